// Hand-built PNG chunks for tests of what the image reader refuses (a header that claims more pixels than
// the file holds, oversized text chunks).
#pragma once

#include <cstdint>
#include <string>

namespace lit::test {

inline uint32_t png_crc(const std::string& bytes) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

inline std::string be32_bytes(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

// One chunk: length, type, data, CRC of type + data.
inline std::string png_chunk(const std::string& type, const std::string& data) {
  return be32_bytes(static_cast<uint32_t>(data.size())) + type + data + be32_bytes(png_crc(type + data));
}

inline std::string png_signature() {
  return std::string("\x89PNG\r\n\x1a\n", 8);
}

// An 8-bit RGB header of width x height.
inline std::string png_ihdr(uint32_t width, uint32_t height) {
  return png_chunk("IHDR", be32_bytes(width) + be32_bytes(height) + std::string("\x08\x02\x00\x00\x00", 5));
}

}  // namespace lit::test
