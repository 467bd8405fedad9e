// lit::Error: the one exception type the library throws for bad input (files, shapes, arguments).
// Its message is a single line that says what went wrong and where; front ends print it and exit non-zero.
#pragma once

#include <stdexcept>
#include <string>

namespace lit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace lit
