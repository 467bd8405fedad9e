// Bad T5 folders stop with one line naming the file and what is wrong; the facade (TextEncoder) loads a
// folder, encodes at full and at the longest prompt's length, caches the null prompt, refuses fp16.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "model/text/text_encoder.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"
#include "weights/safetensors_folder.h"

namespace lit::text {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::fixture;

// A writable copy of a fixture T5 folder.
std::string copy_of(const std::string& layout) {
  const std::string dir = test::fresh_temp_dir(layout);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(fixture("t2i/t5_tiny/" + layout)))
    fs::copy_file(e.path(), dir + "/" + e.path().filename().string());
  return dir;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

std::string load_error(const std::string& dir) {
  return error_of([&] { TextEncoder::load(dir); });
}

void expect_one_line_naming(const std::string& error, const std::string& file, const std::string& what) {
  EXPECT_NE(error.find(file), std::string::npos) << error;
  EXPECT_NE(error.find(what), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

TEST(T5Loader, ShardedFolderOpensOnlyTheShardsItNeeds) {
  const SafetensorsFolder f = SafetensorsFolder::open(fixture("t2i/t5_tiny/sharded"));
  EXPECT_TRUE(f.sharded());
  EXPECT_EQ(f.names().size(), 30u);  // shared + 3 x (9 or 10) + the final norm
  EXPECT_NE(f.file_of("shared.weight").find("model-00001-of-00003.safetensors"), std::string::npos);
  const at::Tensor a = f.tensor("encoder.final_layer_norm.weight");
  const at::Tensor b =
      SafetensorsFile::open(fixture("t2i/t5_tiny/single/model.safetensors")).tensor("encoder.final_layer_norm.weight");
  EXPECT_TRUE(at::equal(a, b));
}

TEST(T5Loader, MissingSpieceModel) {
  const std::string dir = copy_of("single");
  fs::remove(dir + "/spiece.model");
  expect_one_line_naming(load_error(dir), dir + "/spiece.model", "missing");
}

TEST(T5Loader, MissingConfig) {
  const std::string dir = copy_of("single");
  fs::remove(dir + "/config.json");
  expect_one_line_naming(load_error(dir), dir + "/config.json", "missing");
}

TEST(T5Loader, MissingWeights) {
  const std::string dir = copy_of("single");
  fs::remove(dir + "/model.safetensors");
  expect_one_line_naming(load_error(dir), dir, "no model.safetensors and no model.safetensors.index.json");
}

TEST(T5Loader, MissingShard) {
  const std::string dir = copy_of("sharded");
  fs::remove(dir + "/model-00002-of-00003.safetensors");
  expect_one_line_naming(load_error(dir), dir + "/model-00002-of-00003.safetensors", "missing shard");
}

TEST(T5Loader, ConfigThatDoesNotMatchTheTensors) {
  const std::string dir = copy_of("single");
  const std::string text = read_text(dir + "/config.json");
  write_text(dir + "/config.json", std::regex_replace(text, std::regex("\"d_model\": 64"), "\"d_model\": 80"));
  const std::string e = load_error(dir);
  // The first tensor visited, shared.weight: [1100, 64] in the file, [1100, 80] by the config.
  expect_one_line_naming(e, dir + "/model.safetensors", "tensor 'shared.weight' has shape [1100, 64]");
  EXPECT_NE(e.find(dir + "/config.json implies [1100, 80]"), std::string::npos) << e;
}

TEST(T5Loader, ConfigWithFewerLayersThanTheFile) {
  const std::string dir = copy_of("sharded");
  const std::string text = read_text(dir + "/config.json");
  write_text(dir + "/config.json", std::regex_replace(text, std::regex("\"num_layers\": 3"), "\"num_layers\": 2"));
  expect_one_line_naming(load_error(dir), "model-0000", "tensor 'encoder.block.2.");
}

TEST(T5Loader, ConfigWithMoreLayersThanTheFile) {
  const std::string dir = copy_of("single");
  const std::string text = read_text(dir + "/config.json");
  write_text(dir + "/config.json", std::regex_replace(text, std::regex("\"num_layers\": 3"), "\"num_layers\": 4"));
  expect_one_line_naming(load_error(dir), dir + "/model.safetensors",
                         "missing tensor 'encoder.block.3.layer.0.SelfAttention.q.weight'");
}

TEST(T5Loader, TruncatedSafetensors) {
  const std::string dir = copy_of("sharded");
  const std::string shard = dir + "/model-00003-of-00003.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 1000);
  expect_one_line_naming(load_error(dir), shard, "out of range");
  const std::string single = copy_of("single");
  fs::resize_file(single + "/model.safetensors", 4);
  expect_one_line_naming(load_error(single), single + "/model.safetensors", "not a safetensors file");
}

TEST(T5Loader, NotAT5Config) {
  const std::string dir = copy_of("single");
  const std::string text = read_text(dir + "/config.json");
  write_text(dir + "/config.json",
             std::regex_replace(text, std::regex("\"model_type\": \"t5\""), "\"model_type\": \"umt5\""));
  expect_one_line_naming(load_error(dir), dir + "/config.json", "model_type 'umt5' is not a T5 encoder");
}

TEST(T5Loader, DecoderTensorsAreIgnored) {
  // A full T5 checkpoint: the encoder's tensors plus a decoder's. Only the encoder is read.
  const std::string dir = copy_of("single");
  auto tensors = SafetensorsFile::open(dir + "/model.safetensors").tensors();
  std::vector<std::pair<std::string, at::Tensor>> full;
  for (const auto& [name, t] : tensors) full.emplace_back(name, t.clone());
  full.emplace_back("decoder.block.0.layer.0.SelfAttention.q.weight", at::randn({64, 64}));
  full.emplace_back("lm_head.weight", at::randn({1100, 64}));
  write_safetensors(dir + "/model.safetensors", full);
  const TextEncoder enc = TextEncoder::load(dir);
  const TextEncoder ref = TextEncoder::load(fixture("t2i/t5_tiny/single"));
  EXPECT_TRUE(at::equal(enc.encode({"a red cube"}).embeddings, ref.encode({"a red cube"}).embeddings));
}

TEST(T5Loader, FilesInHalfPrecisionLoadIntoTheChosenDtype) {
  // A bf16 copy of the weights loaded as float32 computes the same as float32 weights rounded to bf16.
  const std::string dir = copy_of("single");
  std::vector<std::pair<std::string, at::Tensor>> half;
  for (const auto& [name, t] : SafetensorsFile::open(dir + "/model.safetensors").tensors())
    half.emplace_back(name, t.to(at::kBFloat16));
  write_safetensors(dir + "/model.safetensors", half);
  TextEncoderOptions o;
  o.max_length = 24;
  const TextEncoder enc = TextEncoder::load(dir, o);
  EXPECT_EQ(enc.compute_dtype(), at::kFloat);
  at::Tensor shared;
  const_cast<T5EncoderModel&>(enc.model()).visit([&](const std::string& n, at::Tensor& t) {
    if (n == "shared.weight") shared = t;
  });
  EXPECT_EQ(shared.scalar_type(), at::kFloat);
  for (const auto& [name, t] : half) {
    if (name == "shared.weight") {
      EXPECT_TRUE(at::equal(shared, t.to(at::kFloat)));
    }
  }
}

}  // namespace
}  // namespace lit::text
