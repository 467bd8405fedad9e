#include "common/input_limits.h"

#include <cstdlib>
#include <mutex>

#include "common/error.h"
#include "common/parse_number.h"

namespace lit {
namespace {

std::mutex& limits_mutex() {
  static std::mutex m;
  return m;
}

InputLimits& current_limits() {
  static InputLimits limits = [] {
    InputLimits l;
    if (const char* env = std::getenv("LIT_MAX_IMAGE_PIXELS"); env && *env)
      l.max_image_pixels = parse_pixel_limit(env, "LIT_MAX_IMAGE_PIXELS");
    return l;
  }();
  return limits;
}

}  // namespace

InputLimits input_limits() {
  std::lock_guard<std::mutex> lock(limits_mutex());
  return current_limits();
}

void set_input_limits(const InputLimits& limits) {
  std::lock_guard<std::mutex> lock(limits_mutex());
  current_limits() = limits;
}

uint64_t parse_pixel_limit(const std::string& text, const std::string& what) {
  const uint64_t n = parse_uint64(text, what);
  if (n == 0) throw Error(what + ": the pixel limit must be at least 1");
  return n;
}

}  // namespace lit
