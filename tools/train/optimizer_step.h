// The update half of a training step, shared by the class and the text trainer: gradient clipping by the
// global norm and AdamW, each as a few multi-tensor (foreach) kernels.
//
// torch::optim::AdamW::step launches about ten kernels per parameter tensor, and a sum-of-squares loop over the
// gradients another three per tensor plus a device-to-host copy: about 1,000 launches and a stall per step
// for a 6-block DiT, which left the GPU idle most of the time when the built-in model trained (26.8 steps/s
// at 80 TFLOP/s of an H200's ~775). Here the same arithmetic, in the same order, runs over all tensors at once;
// the state stays in the torch::optim::AdamW (exp_avg, exp_avg_sq, step per parameter), so optimizer.pt is
// saved and loaded exactly as before, and steps of either kind may follow each other.
#pragma once

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <vector>

namespace lit::train {

// The global L2 norm of grads as a 0-d float tensor on their device. With max_norm > 0, scales every gradient
// by min(1, max_norm / (norm + 1e-6)) in place, as torch.nn.utils.clip_grad_norm_; on CUDA without reading the
// norm back to the host (no stall).
at::Tensor clip_grad_norm(const std::vector<at::Tensor>& grads, double max_norm);

// One AdamW step (decoupled weight decay, bias-corrected moments; amsgrad is not supported and refused with
// lit::Error) over every parameter of the optimizer's groups that has a gradient, with the groups' current
// options (lr, betas, eps, weight_decay). Equal to AdamW::step() up to the rounding of the multi-tensor
// kernels (bitwise on the CPU, where they are the per-tensor operators).
void adamw_step(torch::optim::AdamW& optimizer);

}  // namespace lit::train
