// Checks on the outputs of a command, made before any work starts: no output may be one of the inputs or
// another output (also through a symbolic link, "..", or a hard link), and every output's folder must exist and
// accept new files. A run that would clobber its own checkpoint, or fail to save after an hour of sampling,
// stops at once instead.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace lit {

// (option, path): the option names the path in messages, e.g. {"--grid", "out/grid.png"}. Empty paths are
// skipped. Throws lit::Error "--npz out/x.npz: is the same file as --grid out/x.npz".
using NamedPaths = std::vector<std::pair<std::string, std::string>>;
void check_outputs_distinct(const NamedPaths& outputs, const NamedPaths& inputs);

// The folder that will hold `path` exists (or, with create_folders, can be created) and a new file can be
// created in it; `path` itself is not a folder. Creates and removes a probe file with O_EXCL|O_NOFOLLOW under a
// unique name. Throws lit::Error "<option> <path>: cannot write into <folder>: <reason>".
void check_output_writable(const std::string& option, const std::string& path, bool create_folders = false);

// Whether two paths name one file: the same resolved path, or (when both exist) the same device and inode.
bool same_file(const std::string& a, const std::string& b);

}  // namespace lit
