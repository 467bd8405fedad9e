#include "model/backbone/cuda_graph_forward.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <sstream>
#include <utility>
#include <vector>

#include "kernels/runtime/torch_compat.h"

#ifdef LIT_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace lit {
namespace {

// What one graph is recorded for. A graph replays fixed kernels on fixed buffers, so anything that changes a
// kernel or a buffer size needs its own graph: the input shape, the dtypes (x is already in the model's dtype;
// t may be int64 or fractional) and the device.
struct ShapeKey {
  std::vector<int64_t> x_sizes;
  at::ScalarType x_dtype = at::kFloat;
  at::ScalarType t_dtype = at::kLong;
  at::Device device = at::kCPU;

  bool operator==(const ShapeKey& other) const {
    return x_sizes == other.x_sizes && x_dtype == other.x_dtype && t_dtype == other.t_dtype && device == other.device;
  }
};

#ifdef LIT_WITH_CUDA
ShapeKey key_of(const at::Tensor& x, const at::Tensor& t) {
  return {x.sizes().vec(), x.scalar_type(), t.scalar_type(), x.device()};
}

std::string describe(const ShapeKey& key) {
  std::ostringstream s;
  s << "x " << at::IntArrayRef(key.x_sizes) << " " << key.x_dtype << ", t " << key.t_dtype << " on " << key.device;
  return s.str();
}

// One recorded forward.
struct Graph {
  ShapeKey key;
  at::cuda::CUDAGraph graph;  // declared first, so destroyed last: after the output living in its memory pool
  at::Tensor x, t, y;         // static inputs: the graph reads these addresses; each call copies into them
  at::Tensor out;             // static output, allocated during the capture in the graph's private pool
};

// What the graphs depend on besides the input shape: where the parameters are (pos_embed stands for all of
// them: moving or casting the model reallocates every one; the graphs read them by address) and the sum of
// their version counters, which every in-place change raises (load_state_dict included). An in-place change
// keeps the addresses but stales what the model derives from its weights in an eager forward, such as LiT's
// merged q/kv weights in half precision, which a replay would go on reading: so it recaptures too.
std::pair<const void*, int64_t> parameter_state(DiTImpl& model) {
  int64_t versions = 0;
  for (const at::Tensor& p : model.parameters()) versions += static_cast<int64_t>(p._version());
  for (const at::Tensor& b : model.buffers()) versions += static_cast<int64_t>(b._version());
  return {model.pos_embed.data_ptr(), versions};
}
#endif

}  // namespace

struct CudaGraphForward::Cache {
#ifdef LIT_WITH_CUDA
  std::vector<std::unique_ptr<Graph>> graphs;  // oldest first
#endif
  std::vector<ShapeKey> eager;  // shapes whose capture failed: they run eagerly from then on
  // The parameters the graphs were captured with (see parameter_state()).
  std::pair<const void*, int64_t> params{nullptr, -1};
  bool reported = false;  // the one message about a failed capture was sent
};

#ifdef LIT_WITH_CUDA
namespace {

// PyTorch's capture recipe: run the callable a few times on the capture stream first. The first runs
// initialise things lazily (cuBLAS handles and workspaces for this stream, cuDNN execution plans, allocator
// blocks), which must not happen during a capture; later runs see the same state the capture will see.
constexpr int kWarmupRuns = 3;

// Leaves the device usable after a capture that threw: ends the capture if the stream is still capturing
// (it would otherwise stay in capture mode, and its later work would be recorded instead of run) and clears
// the CUDA runtime's last error, which the next kernel launch check would report as its own.
void abandon_capture(at::cuda::CUDAGraph& graph, const c10::cuda::CUDAStream& stream) {
  auto capturing = [&] {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    return cudaStreamIsCapturing(stream.stream(), &status) == cudaSuccess && status != cudaStreamCaptureStatusNone;
  };
  if (capturing()) {
    try {
      graph.capture_end();
    } catch (const std::exception&) {
      // An invalidated capture fails to end (cudaStreamEndCapture still takes the stream out of capture mode).
    }
  }
  if (capturing()) {
    cudaGraph_t partial = nullptr;
    if (cudaStreamEndCapture(stream.stream(), &partial) == cudaSuccess && partial != nullptr)
      (void)cudaGraphDestroy(partial);
  }
  (void)cudaGetLastError();
}

// Records model.forward_unchecked(x, t, y) into a new graph whose static inputs hold copies of x, t, y.
// Throws what the warm-up or the capture throws (the device is left usable).
std::unique_ptr<Graph> capture(DiTImpl& model, const ShapeKey& key, const at::Tensor& x, const at::Tensor& t,
                               const at::Tensor& y) {
  const c10::cuda::CUDAGuard device_guard(x.device());
  auto g = std::make_unique<Graph>();
  g->key = key;
  // Contiguous buffers: a call with inputs in another layout is copied into them (the sampler's are contiguous).
  g->x = at::empty(x.sizes(), x.options()).copy_(x);
  g->t = at::empty(t.sizes(), t.options()).copy_(t);
  g->y = at::empty(y.sizes(), y.options()).copy_(y);
  // The copies above ran on the caller's stream; the side stream starts after them. A capture must also not
  // overlap other work on the device that could touch the memory it records.
  c10::cuda::device_synchronize();
  // Captures must run on a stream other than the default one; the caller's stream is left alone.
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, x.device().index());
  {
    const c10::cuda::CUDAStreamGuard stream_guard(side);
    for (int i = 0; i < kWarmupRuns; ++i) model.forward_unchecked(g->x, g->t, g->y);
    side.synchronize();
    try {
      g->graph.capture_begin();
      g->out = model.forward_unchecked(g->x, g->t, g->y);
      g->graph.capture_end();
    } catch (...) {
      abandon_capture(g->graph, side);
      throw;
    }
  }
  return g;
}

// One call through a graph: the inputs into the static buffers, the recorded kernels, a copy of the output
// (the next replay overwrites the static one). All on the caller's current stream, so in order with its work.
at::Tensor replay(Graph& g, const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
  const c10::cuda::CUDAGuard device_guard(x.device());
  g.x.copy_(x);
  g.t.copy_(t);
  g.y.copy_(y);
  g.graph.replay();
  return g.out.clone();
}

std::string error_text(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) return c10_error->what_without_backtrace();
  return e.what();
}

}  // namespace
#endif

CudaGraphForward::CudaGraphForward(DiT model, MessageFn on_message, size_t max_graphs)
    : model_(std::move(model)),
      on_message_(std::move(on_message)),
      max_graphs_(std::max<size_t>(1, max_graphs)),
      cache_(std::make_unique<Cache>()) {}

CudaGraphForward::~CudaGraphForward() = default;

size_t CudaGraphForward::num_graphs() const {
#ifdef LIT_WITH_CUDA
  return cache_->graphs.size();
#else
  return 0;
#endif
}

size_t CudaGraphForward::num_eager_shapes() const {
  return cache_->eager.size();
}

void CudaGraphForward::clear() {
#ifdef LIT_WITH_CUDA
  cache_->graphs.clear();
#endif
  cache_->eager.clear();
  cache_->params = {nullptr, -1};
}

at::Tensor CudaGraphForward::operator()(const at::Tensor& x_in, const at::Tensor& t_in, const at::Tensor& y_in) {
  DiTImpl& model = *model_;
  // As model->forward: the checks (which may read CPU labels, something a graph cannot do) on every call, then
  // the inputs on the model's device and in its dtype.
  model.check_inputs(x_in, t_in, y_in);
  const at::Tensor x = x_in.to(model.device(), model.dtype());
  const at::Tensor t = t_in.to(model.device());
  const at::Tensor y = y_in.to(model.device(), at::kLong);
#ifdef LIT_WITH_CUDA
  // Graphs only for inference on CUDA: training draws label dropout and records gradients, and autocast keeps
  // a cache of cast weights that a graph would outlive.
  const bool graphable =
      x.is_cuda() && !model.is_training() && !at::GradMode::is_enabled() && !compat::autocast_state(at::kCUDA).enabled;
  if (graphable) {
    Cache& cache = *cache_;
    const auto params = parameter_state(model);
    if (cache.params != params) {
      clear();
      cache.params = params;
    }
    const ShapeKey key = key_of(x, t);
    for (const auto& g : cache.graphs)
      if (g->key == key) return replay(*g, x, t, y);
    if (std::find(cache.eager.begin(), cache.eager.end(), key) == cache.eager.end()) {
      // The oldest graph goes first, so that its memory can serve the new capture.
      if (cache.graphs.size() >= max_graphs_) cache.graphs.erase(cache.graphs.begin());
      std::unique_ptr<Graph> g;
      try {
        g = capture(model, key, x, t, y);
      } catch (const std::exception& e) {
        // Not capturable (an operator that synchronises or copies from the host, a library that refuses
        // capture, memory): this shape runs eagerly, which is always correct.
        cache.eager.push_back(key);
        c10::cuda::device_synchronize();
        if (on_message_ && !cache.reported)
          on_message_("CUDA graphs: the forward for " + describe(key) +
                      " could not be captured; running it without a graph: " + error_text(e));
        cache.reported = true;
      }
      if (g) {
        cache.graphs.push_back(std::move(g));
        return replay(*cache.graphs.back(), x, t, y);
      }
    }
  }
#endif
  return model.forward_unchecked(x, t, y);
}

std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)> graphed_forward(
    DiT model, bool cuda_graphs, CudaGraphForward::MessageFn on_message) {
  if (!cuda_graphs)
    return [model](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) mutable {
      return model->forward(x, t, y);
    };
  // Shared, so that copies of the callable (std::function copies it) share one set of graphs.
  auto graphed = std::make_shared<CudaGraphForward>(std::move(model), std::move(on_message));
  return [graphed](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) { return (*graphed)(x, t, y); };
}

}  // namespace lit
