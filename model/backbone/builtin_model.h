// The built-in model: a Fashion-MNIST LiT trained and distilled by this project (tools/builtin-model.sh),
// shipped in the repository as model/builtin/lit-fmnist.safetensors. Front ends use it when no --model is
// given, so that a fresh machine without network generates images out of the box.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace lit {

// Where the built-in model is looked for, first found wins: $LIT_BUILTIN_MODEL, <dir of the program>/../share/
// lit/lit-fmnist.safetensors (an installed tree), the source tree's model/builtin/lit-fmnist.safetensors.
std::vector<std::string> builtin_model_candidates();

// The first candidate that exists, or nothing.
std::optional<std::string> find_builtin_model();

// find_builtin_model(), or lit::Error listing where it looked (and that --model chooses another model).
std::string builtin_model_path();

// The ten Fashion-MNIST class names in label order ("T-shirt/top", "Trouser", ..., "Ankle boot").
const std::vector<std::string>& fashion_mnist_class_names();

}  // namespace lit
