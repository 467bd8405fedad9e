#include "tools/train/distributed.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <exception>
#include <utility>

#include "common/error.h"
#include "tools/train/dist_compat.h"

#if LIT_DIST_HAS_NCCL
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace lit::train {
namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, int fallback, int min_value) {
  const char* v = env(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n < min_value || n > (1L << 30))
    throw Error(std::string("data parallel: the environment variable ") + name + "=" + v + " is not a valid number");
  return static_cast<int>(n);
}

// The first line of an exception's message (c10::Error carries a backtrace after it).
std::string first_line(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string what = c10 ? c10->what_without_backtrace() : e.what();
  const auto nl = what.find('\n');
  if (nl != std::string::npos) what.resize(nl);
  return what;
}

class C10dGroup;

class C10dPending : public ProcessGroup::Pending {
 public:
  C10dPending(c10::intrusive_ptr<c10d::Work> work, const C10dGroup* group) : work_(std::move(work)), group_(group) {}
  void wait() override;

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  const C10dGroup* group_;
};

class C10dGroup : public ProcessGroup {
 public:
  C10dGroup(c10::intrusive_ptr<compat::C10dBackend> pg, std::string backend, int rank, int size,
            std::chrono::milliseconds timeout)
      : pg_(std::move(pg)), backend_(std::move(backend)), rank_(rank), size_(size) {
    timeout_ = timeout;
  }
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  const std::string& backend() const override { return backend_; }

  // Runs a collective, turning whatever c10d or the backend throws into one clear line.
  template <typename F>
  void guarded(const char* op, F&& f) const {
    try {
      f();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error("data parallel (rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ", " + backend_ +
                  "): " + op + " failed: " + first_line(e) +
                  " -- another rank has exited or stopped answering (timeout " +
                  std::to_string(timeout_.count() / 1000) + " s)");
    }
  }

  void broadcast(std::vector<at::Tensor>& tensors, int root) override {
    guarded("broadcast", [&] {
      for (auto& t : tensors) {
        std::vector<at::Tensor> one{t};
        c10d::BroadcastOptions o;
        o.rootRank = root;
        pg_->broadcast(one, o)->wait();
      }
    });
  }
  void all_reduce_sum(at::Tensor& tensor) override {
    guarded("all-reduce", [&] {
      std::vector<at::Tensor> one{tensor};
      pg_->allreduce(one)->wait();
    });
  }
  void barrier() override {
    guarded("barrier", [&] { pg_->barrier()->wait(); });
  }
  std::unique_ptr<Pending> all_reduce_sum_async(at::Tensor& tensor) override {
    std::unique_ptr<Pending> out;
    guarded("all-reduce", [&] {
      std::vector<at::Tensor> one{tensor};
      out = std::make_unique<C10dPending>(pg_->allreduce(one), this);
    });
    return out;
  }

 private:
  c10::intrusive_ptr<compat::C10dBackend> pg_;
  std::string backend_;
  int rank_, size_;
};

void C10dPending::wait() {
  group_->guarded("all-reduce", [&] { work_->wait(); });
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Environment and set-up
// ---------------------------------------------------------------------------------------------------------
DistEnvironment read_dist_environment() {
  DistEnvironment e;
  if (!env("WORLD_SIZE")) return e;
  e.present = true;
  e.world_size = env_int("WORLD_SIZE", 1, 1);
  if (!env("RANK")) throw Error("data parallel: WORLD_SIZE is set but RANK is not (launch with torchrun)");
  e.rank = env_int("RANK", 0, 0);
  e.local_world_size = env_int("LOCAL_WORLD_SIZE", e.world_size, 1);
  e.local_rank = env_int("LOCAL_RANK", e.rank % e.local_world_size, 0);
  if (e.rank >= e.world_size || e.local_rank >= e.local_world_size)
    throw Error("data parallel: RANK=" + std::to_string(e.rank) + " / LOCAL_RANK=" + std::to_string(e.local_rank) +
                " do not fit WORLD_SIZE=" + std::to_string(e.world_size) +
                " / LOCAL_WORLD_SIZE=" + std::to_string(e.local_world_size));
  if (e.world_size > 1 && (!env("MASTER_ADDR") || !env("MASTER_PORT")))
    throw Error("data parallel: WORLD_SIZE=" + std::to_string(e.world_size) +
                " needs MASTER_ADDR and MASTER_PORT (where rank 0 listens)");
  if (const char* a = env("MASTER_ADDR")) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", 29500, 1);
  if (e.master_port > 65535) throw Error("data parallel: MASTER_PORT must be below 65536");
  const char* agent = env("TORCHELASTIC_USE_AGENT_STORE");
  e.use_agent_store = agent && std::string(agent) == "True";
  e.restart_count = env_int("TORCHELASTIC_RESTART_COUNT", 0, 0);
  return e;
}

bool dist_backend_available(const std::string& backend) {
  if (backend == "gloo") return LIT_DIST_HAS_GLOO;
  if (backend == "nccl") return LIT_DIST_HAS_NCCL;
  return false;
}

std::shared_ptr<ProcessGroup> ProcessGroup::create(const DistEnvironment& e, const std::string& backend,
                                                   std::chrono::milliseconds timeout) {
  if (backend != "gloo" && backend != "nccl")
    throw Error("data parallel: unknown backend '" + backend + "' (gloo or nccl)");
  if (!dist_backend_available(backend))
    throw Error("data parallel: this build of lit has no " + backend +
                (backend == "nccl" ? " (a CUDA build with nccl.h found at configure time has it)"
                                   : " (Gloo's headers were missing at build time: install libgloo-dev)"));
  const std::string where = e.master_addr + ":" + std::to_string(e.master_port);
  try {
    // The store: torchrun's agent hosts one at MASTER_ADDR:MASTER_PORT when it says so (every rank is a
    // client, under the attempt's prefix, as PyTorch's env:// rendezvous does); otherwise rank 0 hosts it.
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(e.master_port);
    so.isServer = !e.use_agent_store && e.rank == 0;
    so.numWorkers = static_cast<size_t>(e.world_size);
    so.waitWorkers = false;
    so.timeout = timeout;
    so.multiTenant = true;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(e.master_addr, so);
    if (e.use_agent_store)
      store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(e.restart_count), store);
    store = c10::make_intrusive<c10d::PrefixStore>("lit/", store);

    c10::intrusive_ptr<compat::C10dBackend> pg;
#if LIT_DIST_HAS_GLOO
    if (backend == "gloo") {
      auto o = c10d::ProcessGroupGloo::Options::create(timeout);
      // GLOO_SOCKET_IFNAME picks the network interface, as in PyTorch; else this host's address.
      if (const char* ifname = env("GLOO_SOCKET_IFNAME"))
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, e.rank, e.world_size, o);
    }
#endif
#if LIT_DIST_HAS_NCCL
    if (backend == "nccl") {
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(e.local_rank));
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, e.rank, e.world_size, o);
    }
#endif
    auto group = std::make_shared<C10dGroup>(pg, backend, e.rank, e.world_size, timeout);
    return group;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& ex) {
    throw Error("data parallel: rank " + std::to_string(e.rank) + " of " + std::to_string(e.world_size) +
                " could not meet the others at " + where + " (" + backend + "): " + first_line(ex));
  }
}

std::vector<uint64_t> ProcessGroup::all_gather_u64(uint64_t value, const at::Device& device) {
  // Each rank fills its own slot, the others are zero: the sum is every rank's value, exactly.
  at::Tensor slots = at::zeros({world_size()}, at::kLong);
  slots[rank()] = static_cast<int64_t>(value);
  at::Tensor on_device = slots.to(device);
  all_reduce_sum(on_device);
  slots = on_device.to(at::kCPU);
  std::vector<uint64_t> out(static_cast<size_t>(world_size()));
  for (int r = 0; r < world_size(); ++r) out[static_cast<size_t>(r)] = static_cast<uint64_t>(slots[r].item<int64_t>());
  return out;
}

uint64_t text_hash(const std::string& text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  return h;
}

void check_same_on_all_ranks(ProcessGroup& group, const std::string& what, const std::string& text,
                             const at::Device& device) {
  const std::vector<uint64_t> hashes = group.all_gather_u64(text_hash(text), device);
  std::string differ;
  for (size_t r = 1; r < hashes.size(); ++r)
    if (hashes[r] != hashes[0]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  if (!differ.empty())
    throw Error("data parallel: the ranks disagree on the " + what + ": rank(s) " + differ +
                " differ from rank 0 (every rank must get the same command line, data and checkpoint); rank " +
                std::to_string(group.rank()) + " has: " + text);
}

// ---------------------------------------------------------------------------------------------------------
// Gradient averaging
// ---------------------------------------------------------------------------------------------------------
GradientAverager::GradientAverager(std::shared_ptr<ProcessGroup> group, std::vector<at::Tensor> parameters,
                                   int64_t bucket_bytes)
    : group_(std::move(group)), parameters_(std::move(parameters)) {
  bucket_of_.assign(parameters_.size(), 0);
  seen_.assign(parameters_.size(), false);
  // Reverse model order: the backward pass produces the last layers' gradients first.
  int64_t bytes = 0;
  for (size_t k = parameters_.size(); k-- > 0;) {
    const at::Tensor& p = parameters_[k];
    const bool fits =
        !buckets_.empty() && bytes < bucket_bytes && buckets_.back().flat.scalar_type() == p.scalar_type();
    if (!fits) {
      buckets_.emplace_back();
      buckets_.back().flat = at::empty({0}, p.options());
      bytes = 0;
    }
    Bucket& b = buckets_.back();
    b.offsets.push_back(bytes / static_cast<int64_t>(p.element_size()));
    b.members.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    bytes += p.numel() * static_cast<int64_t>(p.element_size());
  }
  for (Bucket& b : buckets_) {
    int64_t n = 0;
    for (size_t m : b.members) n += parameters_[m].numel();
    b.flat = at::zeros({n}, b.flat.options());
  }
  hooks_.reserve(parameters_.size());
  for (size_t k = 0; k < parameters_.size(); ++k)
    hooks_.push_back(parameters_[k].register_hook([this, k](const at::Tensor& grad) { on_gradient(k, grad); }));
}

GradientAverager::~GradientAverager() {
  for (size_t k = 0; k < parameters_.size(); ++k) parameters_[k].remove_hook(hooks_[k]);
}

void GradientAverager::begin() {
  for (Bucket& b : buckets_) {
    b.ready = 0;
    b.pending.reset();
  }
  seen_.assign(parameters_.size(), false);
  next_launch_ = 0;
  active_ = true;
}

void GradientAverager::on_gradient(size_t index, const at::Tensor& grad) {
  if (!active_) return;
  Bucket& b = buckets_[bucket_of_[index]];
  size_t slot = 0;
  while (b.members[slot] != index) ++slot;
  at::Tensor view = b.flat.narrow(0, b.offsets[slot], grad.numel()).view(grad.sizes());
  if (seen_[index]) {
    // A second gradient for the same parameter in one backward pass (re-entrant recomputation).
    if (bucket_of_[index] < next_launch_)
      throw Error("data parallel: a gradient arrived after its bucket was all-reduced (parameter " +
                  std::to_string(index) + ")");
    view.add_(grad);
    return;
  }
  view.copy_(grad);
  seen_[index] = true;
  if (++b.ready == b.members.size()) launch_ready();
}

void GradientAverager::launch_ready() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].ready == buckets_[next_launch_].members.size()) {
    Bucket& b = buckets_[next_launch_++];
    b.pending = group_->all_reduce_sum_async(b.flat);
  }
}

void GradientAverager::finish() {
  active_ = false;
  // Parameters that got no gradient (unused in this step) contribute zeros; the rest launches in order.
  for (size_t i = next_launch_; i < buckets_.size(); ++i) {
    Bucket& b = buckets_[i];
    for (size_t s = 0; s < b.members.size(); ++s)
      if (!seen_[b.members[s]]) {
        b.flat.narrow(0, b.offsets[s], parameters_[b.members[s]].numel()).zero_();
        ++b.ready;
      }
  }
  launch_ready();
  const double inv = 1.0 / group_->world_size();
  for (Bucket& b : buckets_) {
    b.pending->wait();
    b.pending.reset();
    b.flat.mul_(inv);
    for (size_t s = 0; s < b.members.size(); ++s) {
      at::Tensor& p = parameters_[b.members[s]];
      const at::Tensor avg = b.flat.narrow(0, b.offsets[s], p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(avg);
      else if (seen_[b.members[s]])
        p.mutable_grad() = avg.clone();
    }
  }
}

}  // namespace lit::train
