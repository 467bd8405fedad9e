#include "weights/image_header.h"

#include <cstring>

#include "common/error.h"
#include "common/input_limits.h"

namespace lit {
namespace {

uint32_t be16(const unsigned char* p) {
  return (uint32_t{p[0]} << 8) | p[1];
}
uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint32_t le16(const unsigned char* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8);
}
uint32_t le24(const unsigned char* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16);
}
uint32_t le32(const unsigned char* p) {
  return le24(p) | (uint32_t{p[3]} << 24);
}

std::optional<ImageHeader> png(const unsigned char* d, size_t n) {
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n < 24 || std::memcmp(d, sig, 8) != 0 || std::memcmp(d + 12, "IHDR", 4) != 0) return std::nullopt;
  return ImageHeader{"PNG", be32(d + 16), be32(d + 20)};
}

// Walks the marker segments up to the first start-of-frame, which holds the size.
std::optional<ImageHeader> jpeg(const unsigned char* d, size_t n) {
  if (n < 4 || d[0] != 0xff || d[1] != 0xd8) return std::nullopt;
  size_t pos = 2;
  while (pos + 4 <= n) {
    if (d[pos] != 0xff) return std::nullopt;
    const unsigned char marker = d[pos + 1];
    if (marker == 0xff) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0xd8 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {  // no length
      pos += 2;
      continue;
    }
    if (marker == 0xd9 || marker == 0xda) return std::nullopt;  // end of image or scan data before any frame
    const size_t length = be16(d + pos + 2);
    if (length < 2) return std::nullopt;
    const bool sof = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
    if (sof) {
      if (length < 7 || pos + 9 > n) return std::nullopt;
      return ImageHeader{"JPEG", be16(d + pos + 7), be16(d + pos + 5)};
    }
    pos += 2 + length;
  }
  return std::nullopt;
}

std::optional<ImageHeader> webp(const unsigned char* d, size_t n) {
  if (n < 30 || std::memcmp(d, "RIFF", 4) != 0 || std::memcmp(d + 8, "WEBP", 4) != 0) return std::nullopt;
  const unsigned char* chunk = d + 12;
  if (std::memcmp(chunk, "VP8X", 4) == 0) return ImageHeader{"WebP", le24(d + 24) + 1u, le24(d + 27) + 1u};
  if (std::memcmp(chunk, "VP8 ", 4) == 0) {
    if (d[23] != 0x9d || d[24] != 0x01 || d[25] != 0x2a) return std::nullopt;
    return ImageHeader{"WebP", le16(d + 26) & 0x3fff, le16(d + 28) & 0x3fff};
  }
  if (std::memcmp(chunk, "VP8L", 4) == 0) {
    if (d[20] != 0x2f) return std::nullopt;
    const uint32_t bits = le32(d + 21);
    return ImageHeader{"WebP", (bits & 0x3fff) + 1u, ((bits >> 14) & 0x3fff) + 1u};
  }
  return std::nullopt;
}

std::optional<ImageHeader> bmp(const unsigned char* d, size_t n) {
  if (n < 26 || d[0] != 'B' || d[1] != 'M') return std::nullopt;
  const uint32_t dib = le32(d + 14);
  if (dib == 12) return ImageHeader{"BMP", le16(d + 18), le16(d + 20)};
  if (dib < 40) return std::nullopt;
  const auto w = static_cast<int32_t>(le32(d + 18)), h = static_cast<int32_t>(le32(d + 22));
  const auto magnitude = [](int32_t v) {
    return v < 0 ? uint64_t(0) - static_cast<uint64_t>(int64_t{v}) : uint64_t(v);
  };
  return ImageHeader{"BMP", magnitude(w), magnitude(h)};
}

}  // namespace

std::optional<ImageHeader> sniff_image_header(const unsigned char* data, size_t size) {
  for (auto sniff : {png, jpeg, webp, bmp})
    if (auto header = sniff(data, size)) return header;
  return std::nullopt;
}

void check_image_pixels(const std::string& path, const ImageHeader& header) {
  if (header.width == 0 || header.height == 0)
    throw Error(path + ": " + header.format + " image of " + std::to_string(header.width) + " x " +
                std::to_string(header.height) + " pixels (an empty image)");
  const uint64_t limit = input_limits().max_image_pixels;
  if (header.width > limit || header.height > limit || header.width * header.height > limit)
    throw Error(path + ": " + header.format + " image of " + std::to_string(header.width) + " x " +
                std::to_string(header.height) + " pixels exceeds the limit of " + std::to_string(limit) +
                " pixels (raise it with --max-image-pixels or LIT_MAX_IMAGE_PIXELS)");
}

}  // namespace lit
