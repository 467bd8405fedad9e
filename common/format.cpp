#include "common/format.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

#include "common/error.h"

namespace lit {

std::string shape_string(c10::ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string format_number(double value) {
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

std::optional<c10::ScalarType> dtype_from_name(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (n == "fp32" || n == "float32" || n == "float") return c10::ScalarType::Float;
  if (n == "bf16" || n == "bfloat16") return c10::ScalarType::BFloat16;
  if (n == "fp16" || n == "float16" || n == "half") return c10::ScalarType::Half;
  return std::nullopt;
}

c10::ScalarType parse_dtype(const std::string& name, const std::string& what) {
  if (const auto dtype = dtype_from_name(name)) return *dtype;
  throw Error(what + " '" + name + "': use fp32, bf16 or fp16");
}

std::string dtype_name(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::ScalarType::Float:
      return "fp32";
    case c10::ScalarType::BFloat16:
      return "bf16";
    case c10::ScalarType::Half:
      return "fp16";
    default:
      throw Error(std::string("dtype ") + c10::toString(dtype) + " has no name here (fp32, bf16, fp16)");
  }
}

const std::vector<std::string>& dtype_names() {
  static const std::vector<std::string> names = {"fp32", "bf16", "fp16"};
  return names;
}

}  // namespace lit
