// Every released DiT configuration (DiT-XL/2 ... DiT-S/8 at 256 and 512 px) must have exactly the names,
// shapes and parameter count of its released checkpoint (fixtures/dit/dit_released_manifest.json). The models
// are built on the meta device: shapes only, no memory (DiT-XL/2 would be 2.7 GB of float32).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "model/backbone/dit.h"
#include "model/backbone/model_io.h"
#include "tests/model/model_test_util.h"

namespace lit {
namespace {

const at::TensorOptions kMeta = at::TensorOptions().device(at::kMeta);

nlohmann::ordered_json manifest() {
  std::ifstream in(test::fixture("dit/dit_released_manifest.json"));
  return nlohmann::ordered_json::parse(in);
}

// "DiT-XL/2@256" -> ("DiT-XL/2", 256)
std::pair<std::string, int64_t> split_key(const std::string& key) {
  const auto at = key.find('@');
  return {key.substr(0, at), std::stoll(key.substr(at + 1))};
}

TEST(ReleasedShapes, EveryReleasedConfigurationMatchesItsCheckpoint) {
  const auto m = manifest();
  ASSERT_EQ(m.size(), 24u);
  for (const auto& [key, entry] : m.items()) {
    const auto [name, image] = split_key(key);
    DiT model(ModelConfig::preset(name, image), kMeta);
    const StateDict sd = state_dict(model);
    const auto& tensors = entry.at("tensors");
    ASSERT_EQ(sd.size(), tensors.size()) << key;
    size_t i = 0;
    for (const auto& [tname, shape] : tensors.items()) {
      const auto& [ours, tensor] = sd.items()[i++];
      EXPECT_EQ(ours, tname) << key << ": tensor " << i - 1 << " (the state-dict order)";
      EXPECT_EQ(tensor.sizes().vec(), shape.get<std::vector<int64_t>>()) << key << ": " << tname;
      EXPECT_TRUE(tensor.is_meta());
    }
    EXPECT_EQ(model->num_parameters(), entry.at("num_params").get<int64_t>()) << key;
    EXPECT_FALSE(model->pos_embed.requires_grad());
  }
}

TEST(ReleasedShapes, ConfigInferredFromTheShapesIsTheRelease) {
  const auto m = manifest();
  for (const auto& [key, entry] : m.items()) {
    const auto [name, image] = split_key(key);
    StateDict sd;
    for (const auto& [tname, shape] : entry.at("tensors").items())
      sd.insert(tname, at::empty(shape.get<std::vector<int64_t>>(), kMeta));
    EXPECT_EQ(infer_config(sd), ModelConfig::preset(name, image)) << key;
  }
}

TEST(ReleasedShapes, LiTPresetsReplaceOnlyTheAttention) {
  const auto m = manifest();
  for (const auto& [key, entry] : m.items()) {
    auto [name, image] = split_key(key);
    const std::string lit_name = "LiT" + name.substr(3);
    const ModelConfig config = ModelConfig::preset(lit_name, image);
    DiT lit(config, kMeta);
    const StateDict sd = state_dict(lit);
    const auto& dit_tensors = entry.at("tensors");
    const int64_t D = config.hidden_size, d = D / config.num_heads;
    int64_t expected_params = entry.at("num_params").get<int64_t>();
    for (const auto& [tname, shape] : dit_tensors.items()) {
      if (tname.find(".attn.qkv.") != std::string::npos) {
        EXPECT_FALSE(sd.contains(tname));
        expected_params -= at::empty(shape.get<std::vector<int64_t>>(), kMeta).numel();
      } else {
        ASSERT_TRUE(sd.contains(tname)) << lit_name << ": " << tname;
        EXPECT_EQ(sd.at(tname).sizes().vec(), shape.get<std::vector<int64_t>>()) << lit_name << ": " << tname;
      }
    }
    for (int64_t b = 0; b < config.depth; ++b) {
      const std::string p = "blocks." + std::to_string(b) + ".attn.";
      EXPECT_EQ(sd.at(p + "q.weight").sizes().vec(), (std::vector<int64_t>{D, D}));
      EXPECT_EQ(sd.at(p + "q.bias").sizes().vec(), (std::vector<int64_t>{D}));
      EXPECT_EQ(sd.at(p + "kv.weight").sizes().vec(), (std::vector<int64_t>{2 * D, D}));
      EXPECT_EQ(sd.at(p + "kv.bias").sizes().vec(), (std::vector<int64_t>{2 * D}));
      EXPECT_EQ(sd.at(p + "dwc.weight").sizes().vec(), (std::vector<int64_t>{d, 1, 5, 5}));
      EXPECT_EQ(sd.at(p + "dwc.bias").sizes().vec(), (std::vector<int64_t>{d}));
      expected_params += 3 * D * D + 3 * D + d * 25 + d;
    }
    EXPECT_EQ(sd.size(), dit_tensors.size() + 4 * static_cast<size_t>(config.depth)) << lit_name;
    EXPECT_EQ(lit->num_parameters(), expected_params) << lit_name;
    EXPECT_EQ(infer_config(sd), config) << lit_name;
  }
}

TEST(ReleasedShapes, SoftmaxHeadsOfAnUnreleasedWidthAreNotGuessed) {
  DiT model(test::tiny_dit_config(), kMeta);
  try {
    infer_config(state_dict(model));
    FAIL() << "expected lit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("width 64"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--config"), std::string::npos) << e.what();
  }
  // A LiT's head count is in its dwc shape, whatever the width.
  DiT lit(test::tiny_lit_config(), kMeta);
  ModelConfig inferred = infer_config(state_dict(lit));
  EXPECT_EQ(inferred, test::tiny_lit_config());
}

}  // namespace
}  // namespace lit
