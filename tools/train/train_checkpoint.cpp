#include "tools/train/train_checkpoint.h"

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

#include "common/atomic_file.h"
#include "common/error.h"
#include "weights/safetensors.h"

namespace fs = std::filesystem;

namespace lit::train {
namespace {

constexpr const char* kPrefix = "step-";

uint32_t file_crc(const std::string& bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (size_t at = 0; at < bytes.size();) {  // crc32 takes a uInt length
    const uInt n = static_cast<uInt>(std::min<size_t>(bytes.size() - at, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + at), n);
    at += n;
  }
  return static_cast<uint32_t>(crc);
}

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
                     {"seed", std::to_string(state.seed)},
                     {"optimizer_crc32", std::to_string(state.optimizer_crc)}});
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
  if (const auto it = file.metadata().find("optimizer_crc32"); it != file.metadata().end()) {
    try {
      state.optimizer_crc = static_cast<uint32_t>(std::stoul(it->second));
    } catch (const std::exception&) {
      throw Error(path + ": the trainer state's optimizer_crc32 is not a number");
    }
  }
  state.generator_state = file.tensor("generator_state").clone();
  return state;
}

uint32_t save_optimizer(const std::string& path, torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  const std::string data = bytes.str();
  AtomicFile file(path);
  file.write(data.data(), data.size());
  file.commit();
  return file_crc(data);
}

void load_optimizer(const std::string& path, torch::optim::Optimizer& optimizer, uint32_t expected_crc) {
  if (!fs::exists(path)) throw Error(path + ": no optimizer state");
  std::ifstream in(path, std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) throw Error(path + ": cannot read the optimizer state");
  if (expected_crc != 0 && file_crc(data) != expected_crc)
    throw Error(path + ": the optimizer state is corrupted (its CRC-32 is not the one recorded when it was saved)");
  try {
    torch::serialize::InputArchive archive;
    std::istringstream bytes(data);
    archive.load_from(bytes);
    optimizer.load(archive);
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (const auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    throw Error(path + ": the optimizer state is unreadable or does not fit the model (" + what + ")");
  }
}

}  // namespace lit::train
