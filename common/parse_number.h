// Strict numbers for command line options and environment variables. The usual conversions (strtoull,
// CLI11's) accept "-1" as 2^64 - 1 and clamp "2^64" to 2^64 - 1 without a word; these refuse both, and refuse
// non-finite or out-of-range floating point values, naming the option.
#pragma once

#include <cstdint>
#include <string>

namespace lit {

// Decimal digits only (no sign, no spaces), value in [0, 2^64). Throws lit::Error "<what>: ...".
uint64_t parse_uint64(const std::string& text, const std::string& what);

// A seed: parse_uint64 ("--seed -1" and "--seed 18446744073709551616" are errors, not 2^64 - 1).
uint64_t parse_seed(const std::string& text, const std::string& what = "--seed");

// A finite number (no nan, inf, hex floats or trailing text) within [min, max]. Throws lit::Error.
double parse_finite(const std::string& text, const std::string& what, double min, double max);

// Checks an already parsed value: finite and within [min, max]. Throws lit::Error naming `what` and the range.
void check_finite_range(double value, const std::string& what, double min, double max);

}  // namespace lit
