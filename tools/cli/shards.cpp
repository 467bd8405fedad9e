#include "tools/cli/shards.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "common/atomic_file.h"
#include "common/error.h"
#include "model/eval/fid_inputs.h"
#include "weights/image_io.h"
#include "weights/npy.h"
#include "weights/zip_archive.h"

namespace fs = std::filesystem;

namespace lit::cli {
namespace {

// A non-negative decimal number filling the whole text, or -1.
int64_t whole_number(const std::string& text) {
  if (text.empty() || text.size() > 12) return -1;
  int64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  return n;
}

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

}  // namespace

Shard parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  const int64_t k = slash == std::string::npos ? -1 : whole_number(text.substr(0, slash));
  const int64_t n = slash == std::string::npos ? -1 : whole_number(text.substr(slash + 1));
  if (k < 0 || n < 1 || k >= n)
    throw Error("--shard " + text + ": expected K/N with 0 <= K < N (shard K of N, e.g. 0/4 ... 3/4)");
  return {k, n};
}

Shard resolve_shard(const std::string& option) {
  if (!option.empty()) return parse_shard(option);
  const char* rank = env("RANK");
  const char* world = env("WORLD_SIZE");
  if (rank && world) {
    const Shard s{whole_number(rank), whole_number(world)};
    if (s.index < 0 || s.count < 1 || s.index >= s.count)
      throw Error(std::string("RANK=") + rank + " and WORLD_SIZE=" + world +
                  " do not name a shard (0 <= RANK < WORLD_SIZE)");
    return s;
  }
  return {};
}

std::string shard_device(const std::string& device) {
  const char* local = env("LOCAL_RANK");
  if (device == "cuda" && local && whole_number(local) >= 0) return "cuda:" + std::string(local);
  return device;
}

std::vector<std::string> run_images_in_order(const std::vector<std::string>& folders) {
  std::map<int64_t, std::string> by_index;
  for (const std::string& folder : folders) {
    if (!fs::is_directory(folder)) throw Error(folder + ": not a folder of `lit generate` images");
    const fs::path top = fs::weakly_canonical(folder);
    for (const std::string& file : list_image_files(folder)) {
      const fs::path p(file);
      if (fs::weakly_canonical(p).parent_path() != top) continue;  // latents/ and other sub-folders
      const int64_t i = whole_number(p.stem().string());
      if (i < 0) continue;  // not one of the run's images (a contact sheet, ...)
      const auto [it, fresh] = by_index.emplace(i, file);
      if (!fresh) throw Error("image " + std::to_string(i) + " is there twice: " + it->second + " and " + file);
    }
  }
  if (by_index.empty()) throw Error("no images named by their index (000000.png, ...) in the folders given");
  std::vector<std::string> out;
  for (const auto& [i, file] : by_index) {
    if (i != static_cast<int64_t>(out.size()))
      throw Error("image " + std::to_string(out.size()) + " is missing (the folders hold " +
                  std::to_string(by_index.size()) + " images up to index " + std::to_string(by_index.rbegin()->first) +
                  "): has every shard finished?");
    out.push_back(file);
  }
  return out;
}

void write_image_batch_npz(const std::string& path, const std::vector<std::string>& images, const at::Tensor& labels) {
  if (images.empty()) throw Error(path + ": no images to write");
  const int64_t n = static_cast<int64_t>(images.size());
  if (labels.defined() && labels.numel() != n)
    throw Error(path + ": " + std::to_string(labels.numel()) + " labels for " + std::to_string(n) + " images");
  const at::Tensor first = read_image(images[0]);
  const int64_t h = first.size(0), w = first.size(1), c = first.size(2);
  // arr_0 is streamed to a temporary .npy (an FID-50K batch is 9 GiB at 256x256), then stored in the zip.
  AtomicPath tmp_npy(path + ".arr_0.npy");
  {
    AtomicFile npy(tmp_npy.temp_path());
    const std::string header = npy_header(at::kByte, {n, h, w, c});
    npy.write(header.data(), header.size());
    for (int64_t i = 0; i < n; ++i) {
      const at::Tensor img = i == 0 ? first : read_image(images[static_cast<size_t>(i)]);
      if (img.sizes() != first.sizes())
        throw Error(images[static_cast<size_t>(i)] + ": its size differs from " + images[0] + "'s");
      npy.write(img.contiguous().data_ptr(), static_cast<size_t>(img.numel()));
    }
    npy.commit();
  }
  ZipWriter zip(path);
  zip.add_file("arr_0.npy", tmp_npy.temp_path(), /*compress=*/false);
  const std::string labels_header = npy_header(at::kLong, {n});
  const at::Tensor labels64 = labels.defined() ? labels.to(at::kLong).contiguous() : at::Tensor();
  if (labels64.defined())
    zip.add(
        "arr_1.npy",
        {{labels_header.data(), labels_header.size()}, {labels64.data_ptr(), static_cast<size_t>(n) * sizeof(int64_t)}},
        /*compress=*/false);
  zip.commit();
  std::remove(tmp_npy.temp_path().c_str());
}

FidInput open_fid_shards(const std::string& list) {
  std::vector<FidInput> parts;
  for (size_t start = 0; start <= list.size();) {
    const size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start) parts.push_back(open_fid_input(list.substr(start, comma - start)));
    start = comma + 1;
  }
  if (parts.empty()) throw Error(list + ": no input between the commas");
  FidInput out;
  out.path = list;
  out.kind = parts[0].kind;
  for (const FidInput& p : parts)
    if (p.kind != out.kind || p.kind == FidInputKind::Statistics)
      throw Error(list + ": shards are image folders or .npz image batches, all of one kind (" + p.path + " is " +
                  fid_input_kind_name(p.kind) + ")");
  if (out.kind == FidInputKind::ImageFolder) {
    std::map<std::string, std::string> by_name;  // file name -> path: the run's index order
    for (const FidInput& p : parts)
      for (const std::string& f : p.files) {
        const auto [it, fresh] = by_name.emplace(fs::path(f).filename().string(), f);
        if (!fresh) throw Error(list + ": " + it->second + " and " + f + " have one name: the shards overlap");
      }
    for (const auto& [name, path] : by_name) out.files.push_back(path);
    return out;
  }
  std::vector<at::Tensor> pixels, labels;
  for (const FidInput& p : parts) {
    pixels.push_back(p.pixels);
    if (p.labels.defined()) labels.push_back(p.labels);
  }
  out.pixels = at::cat(pixels);
  if (labels.size() == parts.size()) out.labels = at::cat(labels);
  return out;
}

}  // namespace lit::cli
