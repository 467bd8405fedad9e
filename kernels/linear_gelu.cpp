#include "kernels/linear_gelu.h"

#include <map>
#include <mutex>

#include "kernels/adaln.h"

namespace lit::kernels {
namespace {

at::Tensor reference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return at::gelu(at::linear(x, weight, bias), "tanh");
}

}  // namespace

bool fused_gelu_is_tanh(at::Device device) {
  static std::mutex mutex;
  static std::map<std::pair<int, int>, bool> known;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_pair(static_cast<int>(device.type()), static_cast<int>(device.index()));
  if (auto it = known.find(key); it != known.end()) return it->second;
  // Inputs in [-3, 3], where tanh-GELU and erf-GELU differ by up to ~2e-4 absolute.
  const auto opts = at::TensorOptions().device(device).dtype(at::kFloat);
  const at::Tensor x = at::linspace(-3, 3, 64, opts).reshape({64, 1}), w = at::ones({1, 1}, opts),
                   b = at::zeros({1}, opts);
  const at::Tensor fused = at::_addmm_activation(b, x, w.t(), 1, 1, /*use_gelu=*/true);
  const double to_tanh = (fused - at::gelu(x, "tanh")).abs().max().item<double>();
  const double to_erf = (fused - at::gelu(x)).abs().max().item<double>();
  return known[key] = to_tanh < 1e-6 && to_erf > 1e-5;
}

at::Tensor linear_gelu_tanh(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, Pass pass) {
  if (!half_precision_cuda_inference(x, pass) || !fused_gelu_is_tanh(x.device())) return reference(x, weight, bias);
  const at::Tensor rows = x.reshape({-1, x.size(-1)});
  const at::Tensor h = at::_addmm_activation(bias, rows, weight.t(), 1, 1, /*use_gelu=*/true);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = h.size(1);
  return h.view(shape);
}

}  // namespace lit::kernels
