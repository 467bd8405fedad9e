#include "weights/finite_check.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "common/error.h"

namespace lit {
namespace {

std::atomic<bool>& allowed_flag() {
  static std::atomic<bool> allowed{[] {
    const char* env = std::getenv("LIT_ALLOW_NON_FINITE_WEIGHTS");
    return env && std::strcmp(env, "1") == 0;
  }()};
  return allowed;
}

}  // namespace

bool non_finite_weights_allowed() {
  return allowed_flag();
}

void allow_non_finite_weights(bool allow) {
  allowed_flag() = allow;
}

void check_finite_weights(const StateDict& weights, const std::string& where) {
  for (const auto& [name, tensor] : weights) {
    if (!at::isFloatingType(tensor.scalar_type()) || tensor.numel() == 0) continue;
    if (at::isfinite(tensor).all().item<bool>()) continue;
    const int64_t nans = at::isnan(tensor).sum().item<int64_t>();
    const int64_t infs = at::isinf(tensor).sum().item<int64_t>();
    throw Error(where + ": tensor '" + name + "' holds " + std::to_string(nans) + " NaN and " + std::to_string(infs) +
                " infinite values of " + std::to_string(tensor.numel()) +
                " (broken weights; --allow-non-finite-weights or LIT_ALLOW_NON_FINITE_WEIGHTS=1 loads them anyway)");
  }
}

}  // namespace lit
