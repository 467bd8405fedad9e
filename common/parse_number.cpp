#include "common/parse_number.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "common/error.h"

namespace lit {
namespace {

std::string shown(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

uint64_t parse_uint64(const std::string& text, const std::string& what) {
  if (text.empty()) throw Error(what + ": expected a non-negative integer, got nothing");
  uint64_t v = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') throw Error(what + ": '" + text + "' is not a non-negative integer");
    const auto digit = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10)
      throw Error(what + ": " + text + " is out of range (at most 18446744073709551615)");
    v = v * 10 + digit;
  }
  return v;
}

uint64_t parse_seed(const std::string& text, const std::string& what) {
  return parse_uint64(text, what);
}

double parse_finite(const std::string& text, const std::string& what, double min, double max) {
  const bool plain = !text.empty() && text.find_first_not_of("0123456789+-.eE") == std::string::npos;
  char* end = nullptr;
  errno = 0;
  const double v = plain ? std::strtod(text.c_str(), &end) : 0.0;
  if (!plain || end != text.c_str() + text.size() || errno == ERANGE)
    throw Error(what + ": '" + text + "' is not a finite number");
  check_finite_range(v, what, min, max);
  return v;
}

void check_finite_range(double value, const std::string& what, double min, double max) {
  if (!std::isfinite(value)) throw Error(what + ": " + shown(value) + " is not a finite number");
  if (value < min || value > max)
    throw Error(what + ": " + shown(value) + " is outside the accepted range [" + shown(min) + ", " + shown(max) + "]");
}

}  // namespace lit
