// Small text helpers every layer shares: a tensor shape as text, a number as the shortest text that reads
// back exactly, and the names of the floating-point dtypes the front ends accept.
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lit {

// "[2, 4, 32, 32]" (as LibTorch prints sizes); "[]" for a scalar's shape.
std::string shape_string(c10::ArrayRef<int64_t> shape);

// Decimal text for numbers in messages and parameters: "4", "1.5", "0.18215" (the shortest form that reads
// back exactly).
std::string format_number(double value);

// The dtype of a name: "fp32" (also "float32", "float"), "bf16" ("bfloat16"), "fp16" ("float16", "half"),
// any case; nothing for another name.
std::optional<c10::ScalarType> dtype_from_name(const std::string& name);
// dtype_from_name, or lit::Error "<what> '<name>': use fp32, bf16 or fp16".
c10::ScalarType parse_dtype(const std::string& name, const std::string& what = "--dtype");
// The canonical name: "fp32", "bf16", "fp16" (lit::Error for other dtypes).
std::string dtype_name(c10::ScalarType dtype);
// {"fp32", "bf16", "fp16"}: the choices, in the order the front ends offer them.
const std::vector<std::string>& dtype_names();

}  // namespace lit
