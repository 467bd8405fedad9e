// lit inspect FILE: what a checkpoint holds (format, recorded config, tensors, parameters, dtypes).
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#include "tools/commands.h"
#include "weights/error.h"
#include "weights/safetensors.h"

namespace lit::cli {
namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string thousands(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

void inspect(const std::string& path, int show) {
  if (!looks_like_safetensors(path)) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw Error(path + ": cannot open");
    std::fclose(f);
    throw Error(path + ": not a recognised checkpoint format (supported: safetensors)");
  }
  const SafetensorsFile file = SafetensorsFile::open(path);
  uint64_t params = 0;
  std::map<std::string, size_t> dtypes;
  for (const auto& e : file.entries()) {
    uint64_t n = 1;
    for (auto d : e.shape) n *= static_cast<uint64_t>(d);
    params += n;
    dtypes[e.dtype]++;
  }
  std::cout << "file        " << path << "\n";
  std::cout << "format      safetensors\n";
  std::cout << "tensors     " << file.entries().size() << "\n";
  std::cout << "parameters  " << thousands(params) << "\n";
  std::cout << "dtypes     ";
  for (const auto& [d, n] : dtypes) std::cout << " " << d << " (" << n << ")";
  std::cout << "\n";
  if (file.metadata().empty()) {
    std::cout << "metadata    (none)\n";
  } else {
    for (const auto& [k, v] : file.metadata()) std::cout << "metadata    " << k << " = " << v << "\n";
  }
  const int n = std::min<int>(show, static_cast<int>(file.entries().size()));
  std::cout << "first " << n << " tensors:\n";
  for (int i = 0; i < n; ++i) {
    const auto& e = file.entries()[static_cast<size_t>(i)];
    std::printf("  %-44s %-6s %s\n", e.name.c_str(), e.dtype.c_str(), shape_string(e.shape).c_str());
  }
  std::cout.flush();
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "Show what a checkpoint file holds");
  static std::string path;
  static int show = 10;
  cmd->add_option("file", path, "checkpoint file")->required();
  cmd->add_option("--show", show, "how many tensors to list")->capture_default_str();
  cmd->callback([] { inspect(path, show); });
}

}  // namespace lit::cli
