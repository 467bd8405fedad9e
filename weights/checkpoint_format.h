// Which of the checkpoint layouts a file is (weights/checkpoint.h reads them all; weights/torch/ the two
// torch.save layouts). Its own header so that the torch readers need nothing of checkpoint.h.
#pragma once

#include <string>

namespace lit {

enum class CheckpointFormat { Safetensors, TorchZip, TorchLegacy };
const char* checkpoint_format_name(CheckpointFormat format);  // "safetensors", "torch zip", "torch legacy"

// Sniffs the format from the first bytes; throws lit::Error for an unreadable or unrecognised file.
CheckpointFormat detect_checkpoint_format(const std::string& path);

}  // namespace lit
