// A DiT/LiT forward replayed from CUDA graphs, for sampling.
//
// On a GPU one forward of a DiT is hundreds of small kernels, and at sampling batch sizes the GPU waits on
// the host launching them. A CUDA graph records the kernels of one forward once (per input shape) and then
// launches them all with one call. The graph's kernels are the eager forward's kernels, recorded on fixed
// ("static") input and output buffers: every call copies its inputs into those buffers, replays, and returns
// a copy of the output, so the result is bit for bit the eager forward's.
//
// Off CUDA (the CPU-only build, a model on the CPU), in training mode or while gradients are recorded, the
// wrapper is a plain model->forward. If a capture fails, that input shape stays eager (reported once through
// the message callback) and sampling goes on.
//
// The model's parameters are baked into the graphs by address. Changing them (in place, as load_state_dict
// does, or by moving or casting the model) drops the graphs, and the next call captures again: every call
// compares the parameters' addresses and version counters with those the graphs were captured with.
// One thread at a time: a capture must not overlap other CUDA work of the process (PyTorch's default global
// capture mode refuses some CUDA calls from other threads while it lasts).
#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "model/backbone/dit.h"

namespace lit {

class CudaGraphForward {
 public:
  using MessageFn = std::function<void(const std::string& message)>;

  // At most max_graphs graphs (input shapes) are kept; capturing one more drops the oldest. Each holds the
  // memory of one forward's activations. on_message gets the one message about a failed capture.
  explicit CudaGraphForward(DiT model, MessageFn on_message = {}, size_t max_graphs = 4);
  ~CudaGraphForward();
  CudaGraphForward(const CudaGraphForward&) = delete;
  CudaGraphForward& operator=(const CudaGraphForward&) = delete;

  // model->forward(x, t, y): the same checks, errors and result. The result is a fresh tensor (the caller may
  // keep it across calls).
  at::Tensor operator()(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y);

  // Graphs captured and kept now (0 off CUDA); input shapes that fell back to the eager forward after a
  // failed capture. For tests and diagnostics.
  size_t num_graphs() const;
  size_t num_eager_shapes() const;

  // Drops every graph (and its memory); the next call captures again.
  void clear();

  const DiT& model() const { return model_; }

 private:
  struct Cache;  // the graphs; CUDA types stay out of this header (it is compiled without CUDA too)

  DiT model_;
  MessageFn on_message_;
  size_t max_graphs_;
  std::unique_ptr<Cache> cache_;
};

// The model's forward as the sampler's callable (sampler/model_fn.h's ClassConditionalFn): through a
// CudaGraphForward when `cuda_graphs` is true (it takes effect on CUDA only), else plain model->forward.
std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)> graphed_forward(
    DiT model, bool cuda_graphs, CudaGraphForward::MessageFn on_message = {});

}  // namespace lit
