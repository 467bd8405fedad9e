#include "tools/train/train_checkpoint.h"

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <vector>

#include "common/atomic_file.h"
#include "common/error.h"
#include "weights/safetensors.h"

namespace fs = std::filesystem;

namespace lit::train {
namespace {

constexpr const char* kPrefix = "step-";

// The step-* folders under dir, oldest first.
std::vector<fs::path> checkpoint_folders(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.rfind(kPrefix, 0) == 0 && name.find(".tmp") == std::string::npos)
      out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());  // zero-padded step numbers sort as text
  return out;
}

}  // namespace

std::string checkpoint_folder_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%07lld", kPrefix, static_cast<long long>(step));
  return buf;
}

std::string write_checkpoint_folder(const std::string& checkpoints_dir, int64_t step,
                                    const std::function<void(const std::string&)>& write) {
  const fs::path final_dir = fs::path(checkpoints_dir) / checkpoint_folder_name(step);
  const fs::path tmp_dir = fs::path(final_dir.string() + ".tmp-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::create_directories(checkpoints_dir, ec);
  remove_tree(tmp_dir.string());
  if (!fs::create_directory(tmp_dir, ec))
    throw Error(tmp_dir.string() + ": cannot create the checkpoint folder (" + ec.message() + ")");
  try {
    write(tmp_dir.string());
  } catch (...) {
    remove_tree(tmp_dir.string());
    throw;
  }
  remove_tree(final_dir.string());
  fs::rename(tmp_dir, final_dir, ec);
  if (ec) throw Error(final_dir.string() + ": cannot rename the checkpoint into place (" + ec.message() + ")");
  return final_dir.string();
}

void prune_checkpoints(const std::string& checkpoints_dir, int keep) {
  // Collect first, remove after: the folder is not changed under a live directory iterator.
  std::vector<fs::path> doomed;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(checkpoints_dir, ec))
    if (entry.path().filename().string().find(".tmp-") != std::string::npos) doomed.push_back(entry.path());
  const auto folders = checkpoint_folders(checkpoints_dir);
  for (size_t i = 0; keep > 0 && i + static_cast<size_t>(keep) < folders.size(); ++i) doomed.push_back(folders[i]);
  for (const fs::path& path : doomed) remove_tree(path.string());
}

std::string find_checkpoint(const std::string& path) {
  const fs::path p(path);
  if (fs::exists(p / "trainer.safetensors")) return p.string();
  for (const fs::path& dir : {p / "checkpoints", p}) {
    auto folders = checkpoint_folders(dir);
    if (!folders.empty()) return folders.back().string();
  }
  throw Error(path + ": no training checkpoint here (expected trainer.safetensors or checkpoints/step-*)");
}

void save_trainer_state(const std::string& path, const TrainerState& state) {
  write_safetensors(path, {{"generator_state", state.generator_state.contiguous()}},
                    {{"step", std::to_string(state.step)},
                     {"position", std::to_string(state.position)},
                     {"seed", std::to_string(state.seed)}});
}

TrainerState load_trainer_state(const std::string& path) {
  const auto file = SafetensorsFile::open(path);
  TrainerState state;
  try {
    state.step = std::stoll(file.metadata().at("step"));
    state.position = std::stoll(file.metadata().at("position"));
    state.seed = std::stoull(file.metadata().at("seed"));
  } catch (const std::exception&) {
    throw Error(path + ": the trainer state lacks step, position or seed");
  }
  state.generator_state = file.tensor("generator_state").clone();
  return state;
}

void save_optimizer(const std::string& path, torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  const std::string data = bytes.str();
  AtomicFile file(path);
  file.write(data.data(), data.size());
  file.commit();
}

void load_optimizer(const std::string& path, torch::optim::Optimizer& optimizer) {
  if (!fs::exists(path)) throw Error(path + ": no optimizer state");
  torch::serialize::InputArchive archive;
  archive.load_from(path);
  optimizer.load(archive);
}

}  // namespace lit::train
