#include "tools/train/ema.h"

#include <ATen/core/grad_mode.h>

namespace lit::train {
namespace {

std::vector<at::Tensor> parameters_of(const DiT& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model->parameters()) out.push_back(p.detach());
  return out;
}

}  // namespace

Ema::Ema(const DiT& model) {
  ema_ = DiT(model->config(), at::TensorOptions().dtype(model->dtype()).device(model->device()), false);
  for (auto& p : ema_->parameters()) p.set_requires_grad(false);
  ema_->eval();
  copy_from(model);
}

void Ema::copy_from(const DiT& model) {
  at::NoGradGuard no_grad;
  const auto src = parameters_of(model), dst = parameters_of(ema_);
  for (size_t i = 0; i < dst.size(); ++i) dst[i].copy_(src[i]);
}

void Ema::update(const DiT& model, double decay) {
  at::NoGradGuard no_grad;
  const auto src = parameters_of(model);
  auto dst = parameters_of(ema_);
  at::_foreach_mul_(dst, decay);
  at::_foreach_add_(dst, src, 1.0 - decay);
}

}  // namespace lit::train
