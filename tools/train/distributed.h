// Data parallelism over PyTorch's c10d: one process per device, started the way PyTorch jobs are started
// (torchrun, srun, mpirun wrappers), which pass RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR and MASTER_PORT in the environment. The processes meet at a TCPStore (MASTER_ADDR:MASTER_PORT;
// torchrun's own store when it says so) and talk through Gloo (CPU tensors) or NCCL (CUDA tensors).
//
// Every collective has the process group's timeout: a rank that dies or hangs ends the others with a
// lit::Error naming the operation instead of a hang.
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lit::train {

// What the launcher put in the environment.
struct DistEnvironment {
  bool present = false;  // WORLD_SIZE is set
  int rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool use_agent_store = false;  // torchrun hosts the store itself (TORCHELASTIC_USE_AGENT_STORE=True)
  int restart_count = 0;         // TORCHELASTIC_RESTART_COUNT: the store's key prefix under torchrun
};

// Reads the variables; throws lit::Error on malformed or inconsistent values (RANK >= WORLD_SIZE, ...).
DistEnvironment read_dist_environment();

// Whether this build can make a process group of this backend ("gloo", "nccl").
bool dist_backend_available(const std::string& backend);

// A process group: this process's rank among world_size, and the collectives the trainer needs. All
// methods are collective (every rank calls them in the same order) unless said otherwise, and throw
// lit::Error when a peer is gone or the timeout passes.
class ProcessGroup {
 public:
  // Meets the other ranks (the store, then the backend's own connections). backend: "gloo" or "nccl";
  // timeout: of the meeting and of every collective. Throws lit::Error.
  static std::shared_ptr<ProcessGroup> create(const DistEnvironment& env, const std::string& backend,
                                              std::chrono::milliseconds timeout);
  virtual ~ProcessGroup() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual const std::string& backend() const = 0;
  std::chrono::milliseconds timeout() const { return timeout_; }

  // Overwrites the tensors with rank `root`'s (tensors on the group's device, same shapes on every rank).
  virtual void broadcast(std::vector<at::Tensor>& tensors, int root = 0) = 0;
  // Sums in place over the ranks, waiting for the result.
  virtual void all_reduce_sum(at::Tensor& tensor) = 0;
  virtual void barrier() = 0;

  // A started all-reduce (sum) that wait() finishes. Not collective itself: the start was.
  class Pending {
   public:
    virtual ~Pending() = default;
    virtual void wait() = 0;
  };
  virtual std::unique_ptr<Pending> all_reduce_sum_async(at::Tensor& tensor) = 0;

  // Every rank's 64-bit value (e.g. a hash of its configuration), in rank order.
  std::vector<uint64_t> all_gather_u64(uint64_t value, const at::Device& device);

 protected:
  std::chrono::milliseconds timeout_{0};
};

// Averages gradients over the ranks while the backward pass runs: the parameters are grouped into buckets
// of about bucket_bytes in reverse order (the order backward produces their gradients), a hook on every
// parameter copies its gradient into its bucket's flat buffer, and the bucket's all-reduce starts as soon as
// the bucket is full (in bucket order, which every rank shares), overlapping with the rest of the backward.
// finish() waits for the last buckets and writes the averages into the parameters' .grad.
class GradientAverager {
 public:
  GradientAverager(std::shared_ptr<ProcessGroup> group, std::vector<at::Tensor> parameters,
                   int64_t bucket_bytes = 25 << 20);
  ~GradientAverager();
  GradientAverager(const GradientAverager&) = delete;
  GradientAverager& operator=(const GradientAverager&) = delete;

  void begin();   // before the backward pass
  void finish();  // after it: every parameter's .grad holds the average over the ranks
  size_t bucket_count() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> members;  // parameter indices
    std::vector<int64_t> offsets;
    at::Tensor flat;
    size_t ready = 0;
    std::unique_ptr<ProcessGroup::Pending> pending;
  };
  void on_gradient(size_t index, const at::Tensor& grad);
  void launch_ready();

  std::shared_ptr<ProcessGroup> group_;
  std::vector<at::Tensor> parameters_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // parameter -> bucket
  std::vector<bool> seen_;
  std::vector<unsigned> hooks_;  // register_hook handles, removed by the destructor
  size_t next_launch_ = 0;
  bool active_ = false;
};

// A 64-bit FNV-1a hash of a text (configurations compared across ranks).
uint64_t text_hash(const std::string& text);

// Throws lit::Error naming the ranks whose `what` differs from rank 0's (collective).
void check_same_on_all_ranks(ProcessGroup& group, const std::string& what, const std::string& text,
                             const at::Device& device);

}  // namespace lit::train
