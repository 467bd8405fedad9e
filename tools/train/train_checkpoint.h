// Training checkpoints: one folder per saved step, <run>/checkpoints/step-NNNNNNN/, holding
//   model.safetensors   the trained weights with their config (save_model: `lit generate` and `lit inspect` read it)
//   ema.safetensors     the EMA weights, likewise (the ones to generate with)
//   optimizer.pt        AdamW's state (LibTorch's serialize archive)
//   trainer.safetensors the generator state as a uint8 tensor; step, data position, seed and optimizer.pt's
//                       CRC-32 in the metadata (a corrupted optimizer state is refused on resume)
// The folder is written under a temporary name and renamed into place when complete, so a crash never leaves
// a checkpoint that looks whole but is not; the oldest beyond a count are removed.
#pragma once

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <cstdint>
#include <functional>
#include <string>

namespace lit::train {

struct TrainerState {
  int64_t step = 0;
  int64_t position = 0;  // data stream position of the next batch
  uint64_t seed = 0;
  at::Tensor generator_state;  // at::Generator::get_state()
  uint32_t optimizer_crc = 0;  // CRC-32 of optimizer.pt; 0 = not recorded (older checkpoints)
};

// "step-0000100".
std::string checkpoint_folder_name(int64_t step);

// Creates <checkpoints_dir>/<checkpoint_folder_name(step)> by calling write(temporary folder) and renaming it
// into place (replacing an older one of the same step). Returns the final folder. Throws lit::Error.
std::string write_checkpoint_folder(const std::string& checkpoints_dir, int64_t step,
                                    const std::function<void(const std::string&)>& write);

// Removes all but the newest `keep` step-* folders (and leftover temporary folders).
void prune_checkpoints(const std::string& checkpoints_dir, int keep);

// A checkpoint folder itself, or the newest one under <path>/checkpoints or <path>. Throws lit::Error.
std::string find_checkpoint(const std::string& path);

void save_trainer_state(const std::string& path, const TrainerState& state);
TrainerState load_trainer_state(const std::string& path);

// Writes the optimizer's state atomically; returns the file's CRC-32.
uint32_t save_optimizer(const std::string& path, torch::optim::Optimizer& optimizer);
// Throws lit::Error when the file's CRC-32 is not expected_crc (unless 0) or the state does not load.
void load_optimizer(const std::string& path, torch::optim::Optimizer& optimizer, uint32_t expected_crc = 0);

}  // namespace lit::train
