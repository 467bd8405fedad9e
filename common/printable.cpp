#include "common/printable.h"

#include <cstdio>

namespace lit {
namespace {

void append_hex_byte(std::string& out, unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\x%02x", c);
  out += buf;
}

// Length of the well-formed UTF-8 sequence starting at s[i] and its code point, or 0 if malformed.
size_t utf8_sequence(std::string_view s, size_t i, char32_t& cp) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n;
  char32_t min;
  if (c < 0x80) {
    cp = c;
    return 1;
  } else if ((c & 0xe0) == 0xc0) {
    n = 2, cp = c & 0x1f, min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    n = 3, cp = c & 0x0f, min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    n = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

bool unsafe_code_point(char32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f)         // C1 controls (CSI, OSC ...)
         || (cp >= 0x202a && cp <= 0x202e)  // bidirectional embeddings and overrides
         || (cp >= 0x2066 && cp <= 0x2069)  // bidirectional isolates
         || cp == 0x2028 || cp == 0x2029;   // line and paragraph separators
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      if (c == '\n')
        out += "\\n";
      else if (c == '\t')
        out += "\\t";
      else if (c == '\r')
        out += "\\r";
      else
        append_hex_byte(out, c);
      ++i;
      continue;
    }
    char32_t cp = 0;
    const size_t n = utf8_sequence(text, i, cp);
    if (n == 0) {
      append_hex_byte(out, c);
      ++i;
    } else if (unsafe_code_point(cp)) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "\\u{%04x}", static_cast<unsigned>(cp));
      out += buf;
      i += n;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace lit
