#include "tools/train/caption_data.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/printable.h"
#include "weights/image_io.h"

namespace fs = std::filesystem;

namespace lit::train {
namespace {

constexpr uint64_t kMaxCaptionBytes = 1 << 20;   // one caption file
constexpr uint64_t kMaxJsonlBytes = 1ull << 30;  // a caption list

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".webp" || ext == ".bmp";
}

std::string trimmed(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

std::string shard_name(size_t i) {
  char name[64];
  std::snprintf(name, sizeof name, "captions-%05zu.safetensors", i);
  return name;
}

}  // namespace

std::vector<CaptionedImage> read_caption_folder(const std::string& dir) {
  if (!fs::is_directory(dir)) throw Error(printable(dir) + ": no such caption folder");
  std::vector<std::string> images;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && is_image_file(e.path())) images.push_back(e.path().string());
  if (images.empty()) throw Error(printable(dir) + ": no images (png, jpg, webp, bmp) in the caption folder");
  std::sort(images.begin(), images.end());
  std::vector<CaptionedImage> out;
  for (const auto& image : images) {
    const fs::path txt = fs::path(image).replace_extension(".txt");
    if (!fs::is_regular_file(txt))
      throw Error(printable(image) + ": no caption beside it (expected " + printable(txt.string()) + ")");
    out.push_back({image, trimmed(read_input_file(txt.string(), kMaxCaptionBytes))});
  }
  return out;
}

std::vector<CaptionedImage> read_caption_jsonl(const std::string& path) {
  const std::string text = read_input_file(path, kMaxJsonlBytes);
  const fs::path base = fs::path(path).parent_path();
  std::istringstream in(text);
  std::string line;
  std::vector<CaptionedImage> out;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (trimmed(line).empty()) continue;
    const std::string where = printable(path) + " line " + std::to_string(n) + ": ";
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw Error(where + "not a JSON object");
    if (!j.contains("image") || !j["image"].is_string()) throw Error(where + "no \"image\" path");
    if (!j.contains("caption") || !j["caption"].is_string())
      throw Error(where + "no \"caption\" for " + printable(j["image"].get<std::string>()));
    fs::path image = j["image"].get<std::string>();
    if (image.is_relative()) image = base / image;
    if (!fs::is_regular_file(image)) throw Error(where + printable(image.string()) + ": no such image");
    out.push_back({image.string(), trimmed(j["caption"].get<std::string>())});
  }
  if (out.empty()) throw Error(printable(path) + ": no captioned images");
  return out;
}

std::vector<CaptionedImage> read_captioned_images(const std::string& spec) {
  if (fs::is_directory(spec)) return read_caption_folder(spec);
  if (fs::path(spec).extension() == ".jsonl") return read_caption_jsonl(spec);
  throw Error(printable(spec) +
              ": expected a caption folder (name.png + name.txt) or a .jsonl of "
              "{\"image\": ..., \"caption\": ...}");
}

bool is_caption_folder(const std::string& path) {
  return fs::exists(fs::path(path) / "captions.json");
}

std::string file_crc32_hex(const std::string& path) {
  const std::string bytes = read_input_file(path, 1ull << 30);
  uLong crc = crc32(0L, Z_NULL, 0);
  for (size_t at = 0; at < bytes.size();) {  // crc32 takes a uInt length
    const uInt n = static_cast<uInt>(std::min<size_t>(bytes.size() - at, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + at), n);
    at += n;
  }
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08lx", static_cast<unsigned long>(crc & 0xffffffffUL));
  return hex;
}

// ---------------------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------------------
CaptionFolderWriter::CaptionFolderWriter(std::string dir, CaptionFolderInfo info, int64_t shard_size)
    : dir_(std::move(dir)), info_(std::move(info)), shard_size_(std::max<int64_t>(1, shard_size)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw Error(printable(dir_) + ": cannot create the folder");
  info_.shards.clear();
}

void CaptionFolderWriter::add(const at::Tensor& features, const at::Tensor& mask, const at::Tensor& image) {
  if (info_.tokens) throw Error(printable(dir_) + ": a token folder takes token ids (add_tokens), not features");
  if (features.dim() != 2 || features.size(0) != info_.max_length || features.size(1) != info_.caption_channels ||
      mask.dim() != 1 || mask.size(0) != info_.max_length)
    throw Error(printable(dir_) + ": caption features of the wrong shape");
  if ((info_.image_size > 0) != image.defined())
    throw Error(printable(dir_) + ": pixel images given without image_size");
  features_.push_back(features.to(at::kCPU, at::kFloat).contiguous());
  masks_.push_back(mask.to(at::kCPU, at::kLong).contiguous());
  if (image.defined()) images_.push_back(image.to(at::kCPU, at::kByte).contiguous());
  ++count_;
  if (static_cast<int64_t>(features_.size()) >= shard_size_) flush();
}

void CaptionFolderWriter::add_tokens(const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& image) {
  if (!info_.tokens) throw Error(printable(dir_) + ": a features folder takes T5 features (add), not token ids");
  if (ids.dim() != 1 || ids.size(0) != info_.max_length || mask.dim() != 1 || mask.size(0) != info_.max_length)
    throw Error(printable(dir_) + ": caption token ids of the wrong shape");
  if ((info_.image_size > 0) != image.defined())
    throw Error(printable(dir_) + ": pixel images given without image_size");
  features_.push_back(ids.to(at::kCPU, at::kLong).contiguous());  // the token ids take the features' place
  masks_.push_back(mask.to(at::kCPU, at::kLong).contiguous());
  if (image.defined()) images_.push_back(image.to(at::kCPU, at::kByte).contiguous());
  ++count_;
  if (static_cast<int64_t>(features_.size()) >= shard_size_) flush();
}

void CaptionFolderWriter::flush() {
  if (features_.empty()) return;
  const std::string name = shard_name(info_.shards.size());
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {info_.tokens ? "tokens" : "features", at::stack(features_)}, {"mask", at::stack(masks_)}};
  if (!images_.empty()) tensors.push_back({"images", at::stack(images_)});
  write_safetensors(dir_ + "/" + name, tensors);
  info_.shards.push_back(name);
  features_.clear();
  masks_.clear();
  images_.clear();
}

void CaptionFolderWriter::finish() {
  flush();
  info_.count = count_;
  nlohmann::json j = {{"count", info_.count},
                      {"max_length", info_.max_length},
                      {"caption_channels", info_.caption_channels},
                      {"image_size", info_.image_size},
                      {"random_flip", info_.random_flip},
                      {"text_encoder", info_.text_encoder},
                      {"shards", info_.shards}};
  if (info_.tokens) {
    j["kind"] = "tokens";
    j["tokenizer"] = info_.tokenizer;
    j["tokenizer_crc32"] = info_.tokenizer_crc32;
    j["vocab_size"] = info_.vocab_size;
  }
  const std::string text = j.dump(2) + "\n";
  AtomicFile out(dir_ + "/captions.json");
  out.write(text.data(), text.size());
  out.commit();
}

// ---------------------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------------------
CaptionedData::CaptionedData(std::string dir) : dir_(std::move(dir)) {
  const std::string index = dir_ + "/captions.json";
  if (!fs::is_regular_file(index))
    throw Error(printable(index) + ": missing (not a folder written by lit extract-latents --text-encoder?)");
  try {
    const nlohmann::json j = nlohmann::json::parse(read_input_file(index, 64 << 20));
    info_.count = j.at("count").get<int64_t>();
    info_.max_length = j.at("max_length").get<int64_t>();
    info_.caption_channels = j.at("caption_channels").get<int64_t>();
    info_.image_size = j.value("image_size", int64_t{0});
    info_.random_flip = j.value("random_flip", true);  // folders written before it existed were flipped
    info_.text_encoder = j.value("text_encoder", std::string());
    info_.shards = j.at("shards").get<std::vector<std::string>>();
    const std::string kind = j.value("kind", std::string("features"));
    if (kind != "features" && kind != "tokens")
      throw Error(printable(index) + ": unknown kind " + printable(kind) + " (features or tokens)");
    info_.tokens = kind == "tokens";
    if (info_.tokens) {
      info_.tokenizer = j.at("tokenizer").get<std::string>();
      info_.tokenizer_crc32 = j.at("tokenizer_crc32").get<std::string>();
      info_.vocab_size = j.at("vocab_size").get<int64_t>();
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(printable(index) + ": " + e.what());
  }
  int64_t start = 0;
  for (const auto& name : info_.shards) {
    if (name.find('/') != std::string::npos || name.find("..") != std::string::npos)
      throw Error(printable(index) + ": bad shard name " + printable(name));
    shards_.push_back(SafetensorsFile::open(dir_ + "/" + name));
    const SafetensorsFile& f = shards_.back();
    const auto& shape = f.entry(info_.tokens ? "tokens" : "features").shape;
    if (info_.tokens) {
      if (shape.size() != 2 || shape[1] != info_.max_length ||
          f.entry("mask").shape != std::vector<int64_t>{shape[0], info_.max_length})
        throw Error(f.path() + ": caption token ids or mask of the wrong shape for " + printable(index));
    } else if (shape.size() != 3 || shape[1] != info_.max_length || shape[2] != info_.caption_channels ||
               f.entry("mask").shape != std::vector<int64_t>{shape[0], info_.max_length}) {
      throw Error(f.path() + ": caption features or mask of the wrong shape for " + printable(index));
    }
    if (info_.image_size > 0 &&
        f.entry("images").shape != std::vector<int64_t>{shape[0], info_.image_size, info_.image_size, 3})
      throw Error(f.path() + ": images of the wrong shape for " + printable(index));
    shard_start_.push_back(start);
    start += shape[0];
  }
  if (start != info_.count || info_.count < 1)
    throw Error(printable(index) + ": the shards hold " + std::to_string(start) + " captions, not " +
                std::to_string(info_.count));
  if (info_.image_size == 0) {
    latents_ = open_latent_folder(dir_);
    if (latents_->size() != info_.count)
      throw Error(printable(dir_) + ": " + std::to_string(latents_->size()) + " latents but " +
                  std::to_string(info_.count) + " captions");
  }
}

std::pair<size_t, int64_t> CaptionedData::locate(int64_t index) const {
  if (index < 0 || index >= info_.count) throw Error(dir_ + ": example " + std::to_string(index) + " out of range");
  const size_t s =
      static_cast<size_t>(std::upper_bound(shard_start_.begin(), shard_start_.end(), index) - shard_start_.begin() - 1);
  return {s, index - shard_start_[s]};
}

std::vector<int64_t> CaptionedData::example_shape() const {
  if (latents_) return latents_->example_shape();
  return {3, info_.image_size, info_.image_size};
}

Example CaptionedData::get(int64_t index, uint64_t seed) const {
  // The seed's lowest bit picks the mirror image (the latent folder's rule too); cleared when flips are off.
  if (!info_.random_flip) seed &= ~uint64_t{1};
  if (latents_) return {latents_->get(index, seed).x, index};
  const auto [s, row] = locate(index);
  at::Tensor image = images_from_uint8(shards_[s].tensor("images")[row].unsqueeze(0))[0];  // (3, S, S)
  if (seed & 1) image = image.flip({2});
  return {image.contiguous(), index};
}

void CaptionedData::captions(const at::Tensor& indices, at::Tensor* features, at::Tensor* mask) const {
  if (info_.tokens)
    throw Error(dir_ +
                ": holds caption token ids (lit extract-latents --tokenizer), not T5 features: train it "
                "jointly with a text encoder, or extract features with --text-encoder");
  const at::Tensor idx = indices.to(at::kCPU, at::kLong).contiguous();
  std::vector<at::Tensor> f, m;
  for (int64_t i = 0; i < idx.numel(); ++i) {
    const auto [s, row] = locate(idx.data_ptr<int64_t>()[i]);
    f.push_back(shards_[s].tensor("features")[row].to(at::kFloat));
    m.push_back(shards_[s].tensor("mask")[row].to(at::kLong));
  }
  *features = at::stack(f);
  *mask = at::stack(m);
}

void CaptionedData::tokens(const at::Tensor& indices, at::Tensor* ids, at::Tensor* mask) const {
  if (!info_.tokens)
    throw Error(dir_ + ": holds T5 features, not caption token ids (extract with lit extract-latents --tokenizer)");
  const at::Tensor idx = indices.to(at::kCPU, at::kLong).contiguous();
  std::vector<at::Tensor> t, m;
  for (int64_t i = 0; i < idx.numel(); ++i) {
    const auto [s, row] = locate(idx.data_ptr<int64_t>()[i]);
    t.push_back(shards_[s].tensor("tokens")[row].to(at::kLong));
    m.push_back(shards_[s].tensor("mask")[row].to(at::kLong));
  }
  *ids = at::stack(t);
  *mask = at::stack(m);
}

std::string CaptionedData::description() const {
  const auto s = example_shape();
  const std::string captions = info_.tokens
                                   ? std::to_string(info_.max_length) + " token ids (" + info_.tokenizer + ")"
                                   : std::to_string(info_.max_length) + "x" + std::to_string(info_.caption_channels);
  return "captioned " + std::string(latents_ ? "latents" : "images") + " " + dir_ + ", " + std::to_string(info_.count) +
         " examples, " + std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]) +
         ", captions " + captions;
}

std::shared_ptr<CaptionedData> open_captioned_data(const std::string& dir) {
  return std::make_shared<CaptionedData>(dir);
}

}  // namespace lit::train
