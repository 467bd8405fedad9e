// Text from a file, made safe to print on a terminal: control characters (C0, DEL, C1), bidirectional
// overrides and bytes that are not UTF-8 are written as escapes (\n, \t, \x1b, \u{202e}), so a tensor name,
// a metadata value or a PNG text chunk can neither clear the screen, retitle the window nor forge lines.
// Everything else, including non-ASCII letters, passes unchanged.
#pragma once

#include <string>
#include <string_view>

namespace lit {

std::string printable(std::string_view text);

}  // namespace lit
