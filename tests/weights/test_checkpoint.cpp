// load_checkpoint on every checkpoint layout the project meets: torch.save zip and legacy, DiT's training
// checkpoint, safetensors; conversion to safetensors; and the files it must refuse without crashing.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "tests/test_util.h"
#include "tests/weights/torch_file_builder.h"
#include "weights/checkpoint.h"
#include "weights/convert.h"
#include "common/error.h"
#include "weights/safetensors.h"

namespace lit {
namespace {

using test::fixture;
using test::temp_path;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Runs f, which must throw lit::Error with a one-line message containing `needle`.
template <class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing: " << needle;
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(needle), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "not one line: " << what;
  }
}

// Same names, dtypes and values; in the same order unless `any_order` (Python's safetensors sorts names).
void expect_same_tensors(const StateDict& a, const StateDict& b, bool any_order = false) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const auto& [name, t] = a.items()[i];
    if (!any_order) {
      EXPECT_EQ(name, b.items()[i].first);
    }
    ASSERT_TRUE(b.contains(name)) << name;
    EXPECT_EQ(t.scalar_type(), b.at(name).scalar_type()) << name;
    EXPECT_TRUE(at::equal(t, b.at(name))) << name;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The fixtures
// ---------------------------------------------------------------------------------------------------------
TEST(Checkpoint, SniffsEveryFormat) {
  EXPECT_EQ(detect_checkpoint_format(fixture("dit/dit_tiny.pt")), CheckpointFormat::TorchZip);
  EXPECT_EQ(detect_checkpoint_format(fixture("dit/dit_tiny_legacy.pt")), CheckpointFormat::TorchLegacy);
  EXPECT_EQ(detect_checkpoint_format(fixture("dit/dit_tiny_train_ckpt.pt")), CheckpointFormat::TorchZip);
  EXPECT_EQ(detect_checkpoint_format(fixture("dit/dit_tiny_fp16.safetensors")), CheckpointFormat::Safetensors);
  EXPECT_EQ(detect_checkpoint_format(fixture("lit/lit_tiny.pt")), CheckpointFormat::TorchZip);
  expect_error([] { detect_checkpoint_format(fixture("dit/config.json")); }, "not a recognised checkpoint format");
  expect_error([] { detect_checkpoint_format("/no/such/model.pt"); }, "No such file");
  expect_error([] { detect_checkpoint_format(LIT_FIXTURES_DIR); }, "not a regular file");
}

TEST(Checkpoint, DitZipHasTheReleasedNamesAndTheFixtureShapes) {
  const LoadedCheckpoint ckpt = load_checkpoint(fixture("dit/dit_tiny.pt"));
  EXPECT_EQ(ckpt.format, CheckpointFormat::TorchZip);
  EXPECT_EQ(ckpt.weights_key, "");
  EXPECT_TRUE(ckpt.top_level_keys.empty());
  EXPECT_TRUE(ckpt.metadata.empty());

  // Names: those of a released DiT (same layout at any width) restricted to the tiny model's 2 blocks.
  std::ifstream in(fixture("dit/dit_released_manifest.json"));
  const auto manifest = nlohmann::json::parse(in);
  std::set<std::string> expected;
  std::map<std::string, size_t> rank;
  for (const auto& [name, shape] : manifest["DiT-S/2@256"]["tensors"].items()) {
    if (name.rfind("blocks.", 0) == 0 && std::stoi(name.substr(7)) >= 2) continue;
    expected.insert(name);
    rank[name] = shape.size();
  }
  std::set<std::string> got;
  for (const auto& [name, t] : ckpt.tensors) {
    got.insert(name);
    EXPECT_EQ(static_cast<size_t>(t.dim()), rank[name]) << name;
    EXPECT_EQ(t.scalar_type(), at::kFloat) << name;
    EXPECT_TRUE(t.is_contiguous()) << name;
  }
  EXPECT_EQ(got, expected);

  // Shapes and values: the fp16 fixture is the same state dict rounded to half precision.
  const SafetensorsFile fp16 = SafetensorsFile::open(fixture("dit/dit_tiny_fp16.safetensors"));
  EXPECT_EQ(fp16.entries().size(), ckpt.tensors.size());
  for (const auto& [name, t] : ckpt.tensors) {
    ASSERT_TRUE(fp16.contains(name)) << name;
    EXPECT_EQ(t.sizes(), fp16.tensor(name).sizes()) << name;
    EXPECT_TRUE(at::equal(t.to(at::kHalf), fp16.tensor(name))) << name;
  }
  EXPECT_EQ(ckpt.tensors.at("pos_embed").sizes(), (std::vector<int64_t>{1, 16, 64}));
  EXPECT_EQ(ckpt.tensors.at("blocks.0.attn.qkv.weight").sizes(), (std::vector<int64_t>{192, 64}));
  EXPECT_EQ(parameter_count(ckpt.tensors),
            parameter_count(load_checkpoint(fixture("dit/dit_tiny_fp16.safetensors")).tensors));
}

TEST(Checkpoint, LegacyFormatGivesBitIdenticalTensors) {
  const LoadedCheckpoint zip = load_checkpoint(fixture("dit/dit_tiny.pt"));
  const LoadedCheckpoint legacy = load_checkpoint(fixture("dit/dit_tiny_legacy.pt"));
  EXPECT_EQ(legacy.format, CheckpointFormat::TorchLegacy);
  expect_same_tensors(legacy.tensors, zip.tensors);
}

TEST(Checkpoint, TrainingCheckpointTakesEmaByDefault) {
  const LoadedCheckpoint plain = load_checkpoint(fixture("dit/dit_tiny.pt"));
  const LoadedCheckpoint ema = load_checkpoint(fixture("dit/dit_tiny_train_ckpt.pt"));
  const LoadedCheckpoint model = load_checkpoint(fixture("dit/dit_tiny_train_ckpt.pt"), "model");
  EXPECT_EQ(ema.weights_key, "ema");
  EXPECT_EQ(model.weights_key, "model");
  EXPECT_EQ(ema.top_level_keys, (std::vector<std::string>{"model", "ema", "opt", "args"}));
  expect_same_tensors(model.tensors, plain.tensors);
  ASSERT_EQ(ema.tensors.size(), model.tensors.size());
  for (const auto& [name, t] : ema.tensors) {
    EXPECT_TRUE(at::equal(t * 2, model.tensors.at(name))) << name;  // halving is exact in binary floating point
    EXPECT_GT(t.abs().sum().item<double>(), 0.0) << name;
  }
}

TEST(Checkpoint, TrainingCheckpointErrorsNameTheKeys) {
  const std::string path = fixture("dit/dit_tiny_train_ckpt.pt");
  expect_error([&] { load_checkpoint(path, "nope"); },
               "no 'nope' weights in this checkpoint (top-level keys: model, ema, opt, args)");
  expect_error([&] { load_checkpoint(path, "opt"); }, "'state' is a dict, not a tensor");
  expect_error([&] { load_checkpoint(path, "args"); }, "'args' is an object, not a state dict");
}

TEST(Checkpoint, LitStateDictIsTheDitPlusItsOwnAttention) {
  const LoadedCheckpoint lit = load_checkpoint(fixture("lit/lit_tiny.pt"));
  const LoadedCheckpoint dit = load_checkpoint(fixture("dit/dit_tiny.pt"));
  const SafetensorsFile attn = SafetensorsFile::open(fixture("lit/lit_tiny_attn.safetensors"));
  size_t attn_count = 0;
  for (const auto& [name, t] : lit.tensors) {
    if (name.find(".attn.") != std::string::npos) {
      ++attn_count;
      ASSERT_TRUE(attn.contains(name)) << name;
      EXPECT_TRUE(at::equal(t, attn.tensor(name))) << name;
    } else {
      ASSERT_TRUE(dit.tensors.contains(name)) << name;
      EXPECT_TRUE(at::equal(t, dit.tensors.at(name))) << name;
    }
  }
  EXPECT_EQ(attn_count, attn.entries().size());
  EXPECT_EQ(lit.tensors.at("blocks.0.attn.kv.weight").sizes(), (std::vector<int64_t>{128, 64}));
  EXPECT_EQ(lit.tensors.at("blocks.1.attn.dwc.weight").sizes(), (std::vector<int64_t>{32, 1, 5, 5}));
}

TEST(Checkpoint, InfoMatchesWhatLoads) {
  for (const char* rel : {"dit/dit_tiny.pt", "dit/dit_tiny_legacy.pt", "dit/dit_tiny_train_ckpt.pt",
                          "dit/dit_tiny_fp16.safetensors", "lit/lit_tiny.pt"}) {
    const LoadedCheckpoint ckpt = load_checkpoint(fixture(rel));
    const CheckpointInfo info = read_checkpoint_info(fixture(rel));
    EXPECT_EQ(info.format, ckpt.format) << rel;
    EXPECT_EQ(info.weights_key, ckpt.weights_key) << rel;
    EXPECT_EQ(info.top_level_keys, ckpt.top_level_keys) << rel;
    EXPECT_EQ(parameter_count(info.tensors), parameter_count(ckpt.tensors)) << rel;
    ASSERT_EQ(info.tensors.size(), ckpt.tensors.size()) << rel;
    for (const auto& t : info.tensors) {
      ASSERT_TRUE(ckpt.tensors.contains(t.name)) << rel << " " << t.name;
      EXPECT_EQ(t.dtype, ckpt.tensors.at(t.name).scalar_type()) << t.name;
      EXPECT_EQ(t.shape, ckpt.tensors.at(t.name).sizes().vec()) << t.name;
    }
  }
}

TEST(Checkpoint, ConfigComesFromMetadataOrTheFolder) {
  std::string source;
  const std::string config = checkpoint_config_json(fixture("dit/dit_tiny.pt"), {}, &source);
  EXPECT_EQ(config, read_bytes(fixture("dit/config.json")));
  EXPECT_EQ(source, fixture("dit/config.json"));
  EXPECT_EQ(checkpoint_config_json(fixture("dit/dit_tiny.pt"), {{"config", "{\"depth\": 2}"}}, &source),
            "{\"depth\": 2}");
  EXPECT_EQ(source, "metadata");
  expect_error([] { checkpoint_config_json("x.pt", {{"config", "[1]"}}); }, "must be a JSON object");
  expect_error([] { checkpoint_config_json("x.pt", {{"config", "{oops"}}); }, "not valid JSON");
}

// ---------------------------------------------------------------------------------------------------------
// Writing and converting
// ---------------------------------------------------------------------------------------------------------
TEST(Checkpoint, ConvertRoundTripKeepsTensorsAndConfig) {
  for (const char* rel : {"dit/dit_tiny.pt", "dit/dit_tiny_legacy.pt", "dit/dit_tiny_train_ckpt.pt"}) {
    const std::string out = temp_path("converted.safetensors");
    const ConvertResult r = convert_checkpoint(fixture(rel), out, {});
    EXPECT_EQ(r.config_source, fixture("dit/config.json")) << rel;
    const LoadedCheckpoint original = load_checkpoint(fixture(rel));
    const LoadedCheckpoint converted = load_checkpoint(out);
    EXPECT_EQ(converted.format, CheckpointFormat::Safetensors);
    expect_same_tensors(converted.tensors, original.tensors);
    EXPECT_EQ(converted.metadata.at("config"), read_bytes(fixture("dit/config.json"))) << rel;
    EXPECT_EQ(r.tensor_count, original.tensors.size());
  }
}

TEST(Checkpoint, ConvertToHalfMatchesTheHalfFixture) {
  const std::string out = temp_path("fp16.safetensors");
  ConvertOptions options;
  options.dtype = parse_float_dtype("fp16");
  options.config_path = fixture("lit/config.json");
  const ConvertResult r = convert_checkpoint(fixture("dit/dit_tiny.pt"), out, options);
  EXPECT_EQ(r.config_source, fixture("lit/config.json"));
  const LoadedCheckpoint half = load_checkpoint(out);
  expect_same_tensors(half.tensors, load_checkpoint(fixture("dit/dit_tiny_fp16.safetensors")).tensors, true);
  EXPECT_EQ(half.metadata.at("config"), read_bytes(fixture("lit/config.json")));  // verbatim
}

TEST(Checkpoint, ConvertRefusesABadConfigAndWritesNothing) {
  const std::string out = temp_path("bad.safetensors");
  const std::string config = temp_path("config.json");
  write_bytes(config, "[1, 2]");
  ConvertOptions options;
  options.config_path = config;
  expect_error([&] { convert_checkpoint(fixture("dit/dit_tiny.pt"), out, options); }, "must be a JSON object");
  EXPECT_FALSE(std::ifstream(out).good());
  expect_error([] { parse_float_dtype("fp8"); }, "unknown dtype 'fp8'");
}

TEST(Checkpoint, CastKeepsIntegerTensors) {
  StateDict sd;
  sd.insert("w", at::randn({3}));
  sd.insert("n", at::arange(3, at::kLong));
  const StateDict cast = cast_floating(sd, at::kBFloat16);
  EXPECT_EQ(cast.at("w").scalar_type(), at::kBFloat16);
  EXPECT_EQ(cast.at("n").scalar_type(), at::kLong);
}

TEST(Checkpoint, SaveCheckpointStoresTheConfig) {
  const std::string path = temp_path("saved.safetensors");
  StateDict sd;
  sd.insert("a", at::randn({2, 3}));
  save_checkpoint(path, sd, R"({"depth": 2})", {{"note", "x"}});
  const LoadedCheckpoint back = load_checkpoint(path);
  EXPECT_EQ(back.metadata.at("config"), R"({"depth": 2})");
  EXPECT_EQ(back.metadata.at("note"), "x");
  expect_same_tensors(back.tensors, sd);
  expect_error([&] { save_checkpoint(path, sd, "not json"); }, "not valid JSON");
}

// ---------------------------------------------------------------------------------------------------------
// Hostile and broken files: each must give a clear lit::Error, never a crash or another exception
// ---------------------------------------------------------------------------------------------------------
TEST(CheckpointHostile, TruncatedFilesAreErrors) {
  for (const char* rel : {"dit/dit_tiny.pt", "dit/dit_tiny_legacy.pt", "dit/dit_tiny_train_ckpt.pt",
                          "dit/dit_tiny_fp16.safetensors", "lit/lit_tiny.pt"}) {
    const std::string bytes = read_bytes(fixture(rel));
    const std::string path = temp_path("truncated");
    std::vector<size_t> cuts;
    for (size_t n = 0; n < 64; ++n) cuts.push_back(n);
    for (size_t i = 1; i < 97; ++i) cuts.push_back(bytes.size() * i / 97);
    for (size_t n = bytes.size() - 32; n < bytes.size(); ++n) cuts.push_back(n);
    for (size_t n : cuts) {
      write_bytes(path, bytes.substr(0, n));
      SCOPED_TRACE(std::string(rel) + " cut at " + std::to_string(n));
      EXPECT_THROW(load_checkpoint(path), Error);
      EXPECT_THROW(read_checkpoint_info(path), Error);
    }
  }
}

TEST(CheckpointHostile, GarbageIsNotACheckpoint) {
  const std::string path = temp_path("garbage.pt");
  std::string bytes;
  uint64_t state = 12345;
  for (int i = 0; i < 4096; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    bytes += static_cast<char>(state >> 56);
  }
  write_bytes(path, bytes);
  expect_error([&] { load_checkpoint(path); }, "not a recognised checkpoint format");
  write_bytes(path, "PK\x03\x04" + bytes);  // a zip magic and nothing behind it
  expect_error([&] { load_checkpoint(path); }, "cannot read as a zip archive");
  write_bytes(path, "");
  expect_error([&] { load_checkpoint(path); }, "not a recognised checkpoint format");
}

TEST(CheckpointHostile, ZipWithoutDataPkl) {
  const std::string path = temp_path("nopkl.pt");
  test::write_torch_zip(path, "archive", "", {{"0", std::string(16, '\0')}}, false);
  expect_error([&] { load_checkpoint(path); }, "without a data.pkl");
}

TEST(CheckpointHostile, MissingStorage) {
  const std::string path = temp_path("nostorage.pt");
  test::write_torch_zip(path, "archive", test::state_dict_pickle("w", "0", 4, {4}, {1}), {});
  expect_error([&] { load_checkpoint(path); }, "tensor 'w' uses storage '0', missing from the archive");
  expect_error([&] { read_checkpoint_info(path); }, "missing from the archive");
}

TEST(CheckpointHostile, StorageTooSmallForSizeAndStride) {
  const std::string path = temp_path("small.pt");
  // The pickle itself claims too few elements for the view.
  test::write_torch_zip(path, "archive", test::state_dict_pickle("w", "0", 16, {4, 8}, {8, 1}),
                        {{"0", std::string(16 * 4, '\0')}});
  expect_error([&] { load_checkpoint(path); }, "holds 16 elements, too few for a tensor of size [4, 8]");
  // The pickle's claim fits the view, the stored data does not.
  test::write_torch_zip(path, "archive", test::state_dict_pickle("w", "0", 32, {4, 8}, {8, 1}),
                        {{"0", std::string(16 * 4, '\0')}});
  expect_error([&] { load_checkpoint(path); }, "storage '0' of tensor 'w' holds 64 bytes in the file, its pickle declares 32 x 4 bytes");
  // A storage that is not a whole number of elements.
  test::write_torch_zip(path, "archive", test::state_dict_pickle("w", "0", 4, {4}, {1}),
                        {{"0", std::string(15, '\0')}});
  expect_error([&] { load_checkpoint(path); }, "not a whole number of");
}

TEST(CheckpointHostile, OffsetsAndStridesAreHonoured) {
  // A transposed view at an offset into a larger storage: rebuilt like torch's as_strided, then made contiguous.
  const std::string path = temp_path("strided.pt");
  std::string data(20 * 4, '\0');
  for (int i = 0; i < 20; ++i) {
    const float v = static_cast<float>(i);
    std::memcpy(&data[static_cast<size_t>(i) * 4], &v, 4);
  }
  test::write_torch_zip(path, "archive", test::state_dict_pickle("w", "0", 20, {3, 2}, {1, 3}, 4), {{"0", data}});
  const at::Tensor w = load_checkpoint(path).tensors.at("w");
  const at::Tensor expected = at::arange(20, at::kFloat).as_strided({3, 2}, {1, 3}, 4);
  EXPECT_TRUE(w.is_contiguous());
  EXPECT_TRUE(at::equal(w, expected)) << w;
}

TEST(CheckpointHostile, UnknownGlobalIsRefusedByName) {
  const std::string path = temp_path("evil.pt");
  test::PickleBytes p;
  p.proto(2).global("os", "system").mark().str("echo pwned").op('t').op('R').stop();
  test::write_torch_zip(path, "archive", p.s, {});
  expect_error([&] { load_checkpoint(path); }, "refusing the global 'os.system'");
  test::PickleBytes q;  // the same through STACK_GLOBAL (protocol 4)
  q.proto(4).str("builtins").str("eval").op('\x93').stop();
  test::write_torch_zip(path, "archive", q.s, {});
  expect_error([&] { load_checkpoint(path); }, "refusing the global 'builtins.eval'");
}

TEST(CheckpointHostile, CorruptSafetensorsOffsets) {
  const std::string path = temp_path("bad.safetensors");
  const std::string header = R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,1048576]}})";
  std::string len(8, '\0');
  for (int i = 0; i < 8; ++i) len[static_cast<size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  write_bytes(path, len + header + std::string(16, '\0'));
  expect_error([&] { load_checkpoint(path); }, "out of range");
}

TEST(CheckpointHostile, LegacyStorageCountsAreChecked) {
  // Make the first storage's element count huge: the reader must see it runs past the end of the file.
  std::string bytes = read_bytes(fixture("dit/dit_tiny_legacy.pt"));
  const size_t first_count = 6377;  // where the storage records start in this fixture (after the 5 pickles)
  ASSERT_EQ(bytes.substr(first_count, 8), std::string("\x80\x01\0\0\0\0\0\0", 8));
  bytes[first_count + 7] = '\x7f';
  const std::string path = temp_path("legacy_count.pt");
  write_bytes(path, bytes);
  expect_error([&] { load_checkpoint(path); }, "left in the file");
}

}  // namespace
}  // namespace lit
