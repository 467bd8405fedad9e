// InceptionV3 (pytorch-fid layout) against pytorch-fid's outputs (fixtures/inception): the weights come from
// the fixture's hash formula (no 90 MB file), the BatchNorm statistics from the fixture file.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/eval/inception.h"
#include "tests/test_util.h"
#include "tests/weights/torch_file_builder.h"
#include "common/error.h"
#include "weights/safetensors.h"

namespace lit {
namespace {

using test::fixture;
using test::rel_error;
using test::temp_path;

// ---------------------------------------------------------------------------------------------------------
// The fixture's weight formula (README.json "weights")
// ---------------------------------------------------------------------------------------------------------
uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  uint64_t z = x;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// base values in [-1, 1) of a tensor's elements, in row-major order.
std::vector<double> hash_base(const std::string& name, int64_t numel) {
  uint64_t h = 0;
  for (unsigned char c : name) h += c;
  h %= 997;
  std::vector<double> base(static_cast<size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) {
    const uint64_t z = splitmix64(static_cast<uint64_t>(i) + (h << 32));
    base[static_cast<size_t>(i)] = 2.0 * (static_cast<double>(z >> 11) / 9007199254740992.0) - 1.0;
  }
  return base;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

at::Tensor formula_tensor(const std::string& name, const std::vector<int64_t>& shape) {
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  const std::vector<double> base = hash_base(name, numel);
  double scale = 0.1, offset = 0.0;
  if (shape.size() >= 2) {
    scale = std::sqrt(6.0 / static_cast<double>(numel / shape[0]));
  } else if (ends_with(name, ".bn.weight")) {
    offset = 1.0;
  }
  at::Tensor t = at::empty(shape, at::kFloat);
  float* p = t.data_ptr<float>();
  for (int64_t i = 0; i < numel; ++i) p[i] = static_cast<float>(offset + scale * base[static_cast<size_t>(i)]);
  return t;
}

nlohmann::ordered_json readme() {
  std::ifstream in(fixture("inception/README.json"));
  return nlohmann::ordered_json::parse(in);
}

// The whole state dict as pytorch-fid's file holds it (num_batches_tracked included), built once.
const StateDict& formula_state_dict() {
  static const StateDict dict = [] {
    StateDict d;
    const auto bn = SafetensorsFile::open(fixture("inception/inception_bn_stats.safetensors"));
    const auto json = readme();
    for (const auto& [name, shape] : json["state_dict_names_and_shapes"].items()) {
      if (ends_with(name, "num_batches_tracked")) {
        d.insert(name, at::zeros({}, at::kLong));
      } else if (ends_with(name, "running_mean") || ends_with(name, "running_var")) {
        d.insert(name, bn.tensor(name).clone());
      } else {
        d.insert(name, formula_tensor(name, shape.get<std::vector<int64_t>>()));
      }
    }
    return d;
  }();
  return dict;
}

const InceptionV3& formula_network() {
  static const InceptionV3 net(formula_state_dict(), at::kCPU, "formula weights");
  return net;
}

// ---------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------
TEST(InceptionFormula, GeneratorMatchesTheFixtureFirstValues) {
  const auto json = readme();
  for (const auto& [name, values] : json["hash_check_first4_base"].items()) {
    const std::vector<double> base = hash_base(name, 4);
    for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(base[i], values[i].get<double>(), 1e-15) << name << "[" << i << "]";
  }
}

TEST(Inception, StateDictNamesAndShapesArePytorchFids) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> expected;
  const auto json = readme();
  for (const auto& [name, shape] : json["state_dict_names_and_shapes"].items())
    if (!ends_with(name, "num_batches_tracked")) expected.emplace_back(name, shape.get<std::vector<int64_t>>());
  EXPECT_EQ(InceptionV3::state_dict_shapes(), expected);
}

TEST(Inception, MatchesPytorchFidAt64And299) {
  const auto io = SafetensorsFile::open(fixture("inception/inception_io.safetensors"));
  const InceptionV3& net = formula_network();
  const at::Tensor f64 = net.features(io.tensor("images64"));
  const double e_f64 = rel_error(f64, io.tensor("features64"));
  const double e_l64 = rel_error(net.logits(f64), io.tensor("logits64"));
  const double e_f299 = rel_error(net.features(io.tensor("images299")), io.tensor("features299"));
  EXPECT_LE(e_f64, 1e-4);
  EXPECT_LE(e_l64, 1e-4);
  EXPECT_LE(e_f299, 1e-4);
  for (const auto& [key, e] : {std::pair<const char*, double>{"rel_error_features64", e_f64},
                               {"rel_error_logits64", e_l64},
                               {"rel_error_features299", e_f299}}) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3g", e);
    RecordProperty(key, text);
  }

  // The extractor's logits are the unbiased ones (x W^T) the Inception Score code takes.
  InceptionFeatureExtractor extractor(std::make_shared<InceptionV3>(net));
  const FeatureBatch b = extractor.extract(io.tensor("images64"));
  EXPECT_EQ(b.features.sizes(), (std::vector<int64_t>{3, 2048}));
  const at::Tensor fc_bias = formula_state_dict().at("fc.bias");
  EXPECT_LE(rel_error(b.logits + fc_bias, io.tensor("logits64")), 1e-4);
}

// The file path of the loader: the generated state dict written as a torch.save zip (float32 storages).
TEST(Inception, LoadsATorchSaveFile) {
  const StateDict& dict = formula_state_dict();
  test::PickleBytes p;
  p.proto(2).global("collections", "OrderedDict").op(')').op('R').mark();
  std::vector<std::pair<std::string, std::string>> storages;
  for (const auto& [name, tensor] : dict) {
    if (tensor.scalar_type() != at::kFloat) continue;  // num_batches_tracked: not needed by the loader
    const std::string key = std::to_string(storages.size());
    std::vector<int> sizes, strides;
    for (int64_t s : tensor.sizes()) sizes.push_back(static_cast<int>(s));
    for (int64_t s : tensor.strides()) strides.push_back(static_cast<int>(s));
    p.str(name).tensor(key, static_cast<int>(tensor.numel()), 0, sizes, strides);
    storages.emplace_back(key, std::string(static_cast<const char*>(tensor.data_ptr()), tensor.nbytes()));
  }
  p.op('u').stop();
  const std::string path = temp_path("pt_inception.pth");
  test::write_torch_zip(path, "archive", p.s, storages);

  const InceptionV3 loaded = InceptionV3::load(path);
  const auto io = SafetensorsFile::open(fixture("inception/inception_io.safetensors"));
  const at::Tensor images = io.tensor("images64").slice(0, 0, 1);
  EXPECT_TRUE(at::equal(loaded.features(images), formula_network().features(images)));
  std::remove(path.c_str());
}

TEST(Inception, RefusesAStateDictOfAnotherNetwork) {
  StateDict d;
  d.insert("blocks.0.attn.qkv.weight", at::zeros({3, 3}));
  try {
    InceptionV3 net(d, at::kCPU, "model.pt");
    FAIL() << "expected lit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.pt"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Conv2d_1a_3x3.conv.weight"), std::string::npos) << e.what();
  }
  // An extra tensor (e.g. torchvision's AuxLogits) is refused too: this is not the FID network.
  StateDict extra;
  for (const auto& [name, t] : formula_state_dict()) extra.insert(name, t);
  extra.insert("AuxLogits.fc.weight", at::zeros({1000, 768}));
  EXPECT_THROW(InceptionV3(extra, at::kCPU, "x"), Error);
}

TEST(Inception, MissingFileSaysWhereTheStandardFileComesFrom) {
  try {
    InceptionV3::load("/no/such/pt_inception.pth");
    FAIL() << "expected lit::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("/no/such/pt_inception.pth"), std::string::npos) << msg;
    EXPECT_NE(msg.find(kInceptionUrl), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace lit
