// The `lit` subcommands. Each registers its options on the CLI11 app and runs when selected; the
// work itself lives in the library, these only parse, call and print.
#pragma once

#include <CLI/CLI.hpp>

namespace lit::cli {

void add_inspect_command(CLI::App& app);
void add_convert_command(CLI::App& app);

}  // namespace lit::cli
