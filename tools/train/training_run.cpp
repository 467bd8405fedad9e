#include "tools/train/training_run.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"

namespace lit::train {

namespace fs = std::filesystem;

const char* lr_schedule_name(LrSchedule schedule) {
  switch (schedule) {
    case LrSchedule::Linear:
      return "linear";
    case LrSchedule::Cosine:
      return "cosine";
    default:
      return "constant";
  }
}

LrSchedule parse_lr_schedule(const std::string& name) {
  if (name == "constant") return LrSchedule::Constant;
  if (name == "linear") return LrSchedule::Linear;
  if (name == "cosine") return LrSchedule::Cosine;
  throw Error("--lr-schedule " + name + ": use constant, linear or cosine");
}

double scheduled_lr(LrSchedule schedule, double lr, double min_lr, int64_t warmup, int64_t max_steps, int64_t step) {
  if (warmup > 0 && step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (schedule == LrSchedule::Constant) return lr;
  const int64_t start = std::max<int64_t>(warmup, 0), span = std::max<int64_t>(max_steps - start, 1);
  const double p = std::clamp(static_cast<double>(step - start) / static_cast<double>(span), 0.0, 1.0);
  const double fraction = schedule == LrSchedule::Linear ? 1.0 - p : 0.5 * (1.0 + std::cos(M_PI * p));
  return min_lr + (lr - min_lr) * fraction;
}

void StepLog::open(const std::string& run_dir) {
  path_ = (fs::path(run_dir) / "log.jsonl").string();
  out_.open(path_, std::ios::app);
  if (!out_) throw Error(path_ + ": cannot open the log for writing");
}

void StepLog::write(const std::string& json_line) {
  if (!out_.is_open()) return;
  out_ << json_line << "\n";
  out_.flush();
}

void StepLog::truncate_after(int64_t step) {
  if (!out_.is_open()) return;
  out_.close();
  std::string kept;
  {
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() > step)
        continue;
      kept += line + "\n";
    }
  }
  AtomicFile out(path_);
  out.write(kept.data(), kept.size());
  out.commit();
  out_.open(path_, std::ios::app);
  if (!out_) throw Error(path_ + ": cannot open the log for writing");
}

void run_steps(const StepLoop& loop, int64_t steps_done, const std::function<int64_t()>& step,
               const std::function<void()>& save, const std::function<bool()>& should_stop,
               const std::function<void(int64_t)>& after) {
  // Stop when any rank is asked to (Ctrl-C reaches one process under some launchers): agreed every step, so
  // that no rank waits for a step the others will not take.
  auto stop_now = [&] {
    const bool stop = should_stop && should_stop();
    if (!loop.group) return stop;
    at::Tensor flag = at::full({1}, stop ? 1.0f : 0.0f, at::TensorOptions().device(loop.device));
    loop.group->all_reduce_sum(flag);
    return flag.item<float>() > 0;
  };
  int64_t last_saved = -1;
  while (steps_done < loop.max_steps && !stop_now()) {
    steps_done = step();
    if (loop.writer && loop.checkpoint_every > 0 && steps_done % loop.checkpoint_every == 0) {
      save();
      last_saved = steps_done;
    }
    if (after) after(steps_done);
  }
  if (loop.writer && last_saved != steps_done) save();
}

void check_process_group(const ProcessGroup& group, int rank, int world_size) {
  if (group.rank() != rank || group.world_size() != world_size)
    throw Error("train: the process group is rank " + std::to_string(group.rank()) + " of " +
                std::to_string(group.world_size()) + " but the options say " + std::to_string(rank) + " of " +
                std::to_string(world_size));
}

std::vector<at::Tensor> module_tensors(const torch::nn::Module& module) {
  std::vector<at::Tensor> out;
  for (const auto& p : module.parameters()) out.push_back(p);
  for (const auto& b : module.buffers()) out.push_back(b);
  return out;
}

void check_checkpoint_seed(const std::string& dir, uint64_t saved, uint64_t wanted) {
  if (saved != wanted)
    throw Error(dir + ": the checkpoint was trained with seed " + std::to_string(saved) + ", not " +
                std::to_string(wanted) + " (pass --seed " + std::to_string(saved) + ")");
}

}  // namespace lit::train
