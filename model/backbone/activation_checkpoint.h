// Activation checkpointing for the transformer blocks: the forward pass keeps only a block's inputs, and the
// backward pass runs the block again (with the autocast state of the forward pass) to get its gradients.
// Memory for activations drops from O(depth) blocks to one; the price is a second forward of each block.
// The blocks are deterministic (no dropout), so the gradients equal those without checkpointing.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace lit {
namespace dit {
class DiTBlockImpl;  // model/backbone/dit.h
}  // namespace dit

// block(x, c, grid_h, grid_w) as a training pass (kernels::Pass::Training, in the first forward too, so that
// it computes what the recomputation with gradients will, bit for bit) without storing its activations. x and c may
// require gradients; the block's parameters receive theirs when the backward pass reaches it.
at::Tensor checkpointed_block(dit::DiTBlockImpl& block, const at::Tensor& x, const at::Tensor& c, int64_t grid_h,
                              int64_t grid_w);

}  // namespace lit
