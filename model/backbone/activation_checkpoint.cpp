#include "model/backbone/activation_checkpoint.h"

#include <torch/autograd.h>

#include <optional>

#include "kernels/execution.h"
#include "kernels/runtime/torch_compat.h"
#include "model/backbone/dit.h"

namespace lit {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct CheckpointedBlock : public torch::autograd::Function<CheckpointedBlock> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& c, dit::DiTBlockImpl* block,
                            int64_t grid_h, int64_t grid_w) {
    // Runs without recording (Function::apply turns grad mode off here).
    const compat::AutocastState autocast = compat::autocast_state(x.device().type());
    ctx->save_for_backward({x, c});
    ctx->saved_data["block"] = reinterpret_cast<int64_t>(block);
    ctx->saved_data["grid_h"] = grid_h;
    ctx->saved_data["grid_w"] = grid_w;
    ctx->saved_data["autocast"] = autocast.enabled;
    ctx->saved_data["autocast_dtype"] = static_cast<int64_t>(autocast.dtype);
    // The operators the recomputation will take (with gradients), not the inference kernels.
    return block->forward(x, c, grid_h, grid_w, kernels::Pass::Training);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    auto* block = reinterpret_cast<dit::DiTBlockImpl*>(ctx->saved_data["block"].toInt());
    at::Tensor x = saved[0].detach().requires_grad_(saved[0].requires_grad());
    at::Tensor c = saved[1].detach().requires_grad_(saved[1].requires_grad());
    at::Tensor out;
    {
      const at::AutoGradMode grad_on(true);
      std::optional<compat::AutocastGuard> autocast;
      if (ctx->saved_data["autocast"].toBool())
        autocast.emplace(x.device().type(), static_cast<at::ScalarType>(ctx->saved_data["autocast_dtype"].toInt()));
      out = block->forward(x, c, ctx->saved_data["grid_h"].toInt(), ctx->saved_data["grid_w"].toInt(),
                           kernels::Pass::Training);
    }
    // Accumulates into the block's parameters and into the fresh leaves x and c.
    torch::autograd::backward({out}, {grad_outputs[0]});
    return {x.requires_grad() ? x.grad() : at::Tensor(), c.requires_grad() ? c.grad() : at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor checkpointed_block(dit::DiTBlockImpl& block, const at::Tensor& x, const at::Tensor& c, int64_t grid_h,
                              int64_t grid_w) {
// GCC 13 reports a false -Warray-bounds inside LibTorch's Function::apply (a std::vector<bool>::reserve it
// inlines); the code is LibTorch's, the warning is not about ours.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif
  return CheckpointedBlock::apply(x, c, &block, grid_h, grid_w);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
}

}  // namespace lit
