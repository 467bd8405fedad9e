#include "tools/train/optimizer_step.h"

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>

#include "common/error.h"
#include "kernels/runtime/torch_compat.h"

namespace lit::train {
namespace {

// The key of a parameter's state in Optimizer::state(): LibTorch 1.13 keys it by the TensorImpl's address
// printed by an ostream (c10::guts::to_string), 2.x by the address itself.
template <typename Key>
Key state_key(const at::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream out;
    out << static_cast<const void*>(p.unsafeGetTensorImpl());
    return out.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

}  // namespace

at::Tensor clip_grad_norm(const std::vector<at::Tensor>& grads, double max_norm) {
  at::NoGradGuard no_grad;
  if (grads.empty()) return at::zeros({}, at::kFloat);
  const auto norms = at::_foreach_norm(grads, 2);
  const at::Tensor total = at::stack(norms).to(at::kFloat).norm();
  if (max_norm <= 0) return total;
#if LIT_TORCH_AT_LEAST(2, 1)
  if (!total.device().is_cpu()) {
    const at::Tensor coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
    at::_foreach_mul_(grads, coef);
    return total;
  }
#endif
  const double norm = total.item<double>();
  if (norm > max_norm) at::_foreach_mul_(grads, max_norm / (norm + 1e-6));
  return total;
}

void adamw_step(torch::optim::AdamW& optimizer) {
  at::NoGradGuard no_grad;
  using Key = typename std::decay_t<decltype(optimizer.state())>::key_type;
  for (auto& group : optimizer.param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    if (o.amsgrad()) throw Error("adamw_step: amsgrad is not supported");
    std::vector<at::Tensor> params, grads, exp_avg, exp_avg_sq;
    int64_t step = -1;
    bool same_step = true;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& slot = optimizer.state()[state_key<Key>(p)];
      if (!slot) {  // as AdamW::step initialises a parameter's state
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(0);
        s->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
        s->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
        slot = std::move(s);
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*slot);
      s.step(s.step() + 1);
      if (step >= 0 && s.step() != step) same_step = false;
      step = s.step();
      params.push_back(p);
      grads.push_back(p.grad());
      exp_avg.push_back(s.exp_avg());
      exp_avg_sq.push_back(s.exp_avg_sq());
    }
    if (params.empty()) continue;
    const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
    if (o.weight_decay() != 0) at::_foreach_mul_(params, 1 - o.lr() * o.weight_decay());
    at::_foreach_mul_(exp_avg, beta1);
    at::_foreach_add_(exp_avg, grads, 1 - beta1);
    at::_foreach_mul_(exp_avg_sq, beta2);
    at::_foreach_addcmul_(exp_avg_sq, grads, grads, 1 - beta2);
    if (same_step) {
      const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(step));
      const double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(step));
      auto denom = at::_foreach_sqrt(exp_avg_sq);
      at::_foreach_div_(denom, std::sqrt(bias_correction2));
      at::_foreach_add_(denom, o.eps());
      at::_foreach_addcdiv_(params, exp_avg, denom, -o.lr() / bias_correction1);
    } else {  // parameters added to the group later: their own bias corrections, tensor by tensor
      for (size_t i = 0; i < params.size(); ++i) {
        const auto& s = static_cast<torch::optim::AdamWParamState&>(*optimizer.state()[state_key<Key>(params[i])]);
        const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(s.step()));
        const double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(s.step()));
        const at::Tensor denom = (exp_avg_sq[i].sqrt() / std::sqrt(bias_correction2)).add_(o.eps());
        params[i].addcdiv_(exp_avg[i], denom, -o.lr() / bias_correction1);
      }
    }
  }
}

}  // namespace lit::train
