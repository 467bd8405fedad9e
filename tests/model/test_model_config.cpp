#include <gtest/gtest.h>

#include <fstream>

#include "model/backbone/model_config.h"
#include "tests/model/model_test_util.h"
#include "common/error.h"

namespace lit {
namespace {

// Expects a lit::Error whose message contains `fragment`.
#define EXPECT_ERROR_WITH(statement, fragment)                                                \
  do {                                                                                        \
    try {                                                                                     \
      statement;                                                                              \
      ADD_FAILURE() << "no lit::Error from " #statement;                                      \
    } catch (const Error& e) {                                                                \
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();         \
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "multi-line message"; \
    }                                                                                         \
  } while (0)

TEST(ModelConfig, ReadsTheTinyFixtureConfig) {
  const ModelConfig c = test::tiny_dit_config();
  EXPECT_EQ(c.input_size, 8);
  EXPECT_EQ(c.patch_size, 2);
  EXPECT_EQ(c.in_channels, 4);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.depth, 2);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.mlp_ratio, 4.0);
  EXPECT_EQ(c.class_dropout_prob, 0.1);
  EXPECT_EQ(c.num_classes, 10);
  EXPECT_TRUE(c.learn_sigma);
  EXPECT_EQ(c.attention, AttentionType::Softmax);
  EXPECT_EQ(c.out_channels(), 8);
  EXPECT_EQ(c.num_patches(), 16);
  EXPECT_EQ(c.label_table_rows(), 11);
  EXPECT_EQ(c.preset_name(), "custom");
}

TEST(ModelConfig, JsonRoundTrip) {
  for (const std::string& name : ModelConfig::preset_names()) {
    const ModelConfig c = ModelConfig::preset(name, 512);
    EXPECT_EQ(ModelConfig::from_json(c.to_json()), c) << name;
    EXPECT_EQ(ModelConfig::from_json(c.to_json(2)), c) << name;
  }
  ModelConfig odd = test::tiny_lit_config();
  odd.mlp_ratio = 2.5;
  odd.class_dropout_prob = 0;
  odd.learn_sigma = false;
  odd.dwc_kernel = 3;
  EXPECT_EQ(ModelConfig::from_json(odd.to_json()), odd);
  EXPECT_NE(odd.to_json().find("\"attention\":\"linear\""), std::string::npos);
  EXPECT_NE(odd.to_json().find("\"dwc_kernel\":3"), std::string::npos);
  EXPECT_EQ(test::tiny_dit_config().to_json().find("dwc_kernel"), std::string::npos);
}

TEST(ModelConfig, DefaultsFollowDiTsConstructor) {
  const ModelConfig c = ModelConfig::from_json(
      R"({"input_size": 32, "patch_size": 2, "in_channels": 4, "hidden_size": 384, "depth": 12, "num_heads": 6})");
  EXPECT_EQ(c.mlp_ratio, 4.0);
  EXPECT_EQ(c.class_dropout_prob, 0.1);
  EXPECT_EQ(c.num_classes, 1000);
  EXPECT_TRUE(c.learn_sigma);
  EXPECT_EQ(c.attention, AttentionType::Softmax);
  EXPECT_EQ(c, ModelConfig::preset("DiT-S/2", 256));
}

TEST(ModelConfig, Presets) {
  struct Expect {
    const char* name;
    int64_t depth, hidden, heads, patch;
    AttentionType attention;
  };
  const Expect expected[] = {
      {"DiT-XL/2", 28, 1152, 16, 2, AttentionType::Softmax}, {"DiT-L/4", 24, 1024, 16, 4, AttentionType::Softmax},
      {"DiT-B/8", 12, 768, 12, 8, AttentionType::Softmax},   {"DiT-S/2", 12, 384, 6, 2, AttentionType::Softmax},
      {"LiT-XL/2", 28, 1152, 4, 2, AttentionType::Linear},   {"LiT-L/2", 24, 1024, 4, 2, AttentionType::Linear},
      {"LiT-B/4", 12, 768, 2, 4, AttentionType::Linear},     {"LiT-S/8", 12, 384, 2, 8, AttentionType::Linear},
  };
  for (const auto& e : expected) {
    for (int64_t image : {256, 512}) {
      const ModelConfig c = ModelConfig::preset(e.name, image);
      EXPECT_EQ(c.depth, e.depth) << e.name;
      EXPECT_EQ(c.hidden_size, e.hidden) << e.name;
      EXPECT_EQ(c.num_heads, e.heads) << e.name;
      EXPECT_EQ(c.patch_size, e.patch) << e.name;
      EXPECT_EQ(c.attention, e.attention) << e.name;
      EXPECT_EQ(c.input_size, image / 8);
      EXPECT_EQ(c.in_channels, 4);
      EXPECT_EQ(c.num_classes, 1000);
      EXPECT_TRUE(c.learn_sigma);
      EXPECT_EQ(c.dwc_kernel, 5);
      EXPECT_EQ(c.preset_name(), e.name);
    }
  }
  EXPECT_EQ(ModelConfig::preset_names().size(), 24u);
  EXPECT_EQ(ModelConfig::preset("DiT-XL-2", 256), ModelConfig::preset("DiT-XL/2", 256));
  EXPECT_ERROR_WITH(ModelConfig::preset("DiT-M/2"), "unknown model 'DiT-M/2'");
  EXPECT_ERROR_WITH(ModelConfig::preset("DiT-XL/2", 100), "multiple of 8");
  EXPECT_ERROR_WITH(ModelConfig::preset("DiT-XL/8", 32), "not divisible by patch_size");
  EXPECT_NE(ModelConfig::preset("LiT-B/2").summary().find("LiT-B/2: 32x32x4 input"), std::string::npos);
}

TEST(ModelConfig, ValidationNamesTheProblem) {
  auto with = [](auto change) {
    ModelConfig c = test::tiny_dit_config();
    change(c);
    return c;
  };
  EXPECT_ERROR_WITH(with([](ModelConfig& c) { c.num_heads = 5; }).validate(),
                    "hidden_size 64 is not divisible by num_heads 5");
  EXPECT_ERROR_WITH(with([](ModelConfig& c) { c.patch_size = 3; }).validate(),
                    "input_size 8 is not divisible by patch_size 3");
  EXPECT_ERROR_WITH(with([](ModelConfig& c) { c.hidden_size = 66, c.num_heads = 3; }).validate(), "multiple of 4");
  EXPECT_ERROR_WITH(with([](ModelConfig& c) { c.depth = 0; }).validate(), "'depth' must be positive");
  EXPECT_ERROR_WITH(with([](ModelConfig& c) { c.num_classes = 0; }).validate(), "'num_classes' must be positive");
  EXPECT_ERROR_WITH(with([](ModelConfig& c) { c.mlp_ratio = 0; }).validate(), "mlp_ratio");
  EXPECT_ERROR_WITH(with([](ModelConfig& c) { c.class_dropout_prob = 1; }).validate(), "class_dropout_prob");
  EXPECT_ERROR_WITH(with([](ModelConfig& c) { c.attention = AttentionType::Linear, c.dwc_kernel = 4; }).validate(),
                    "dwc_kernel must be a positive odd number");
}

TEST(ModelConfig, JsonErrorsNameTheKey) {
  const std::string base = R"("input_size": 8, "patch_size": 2, "in_channels": 4, "hidden_size": 64, "depth": 2)";
  EXPECT_ERROR_WITH(ModelConfig::from_json("{" + base + "}"), "missing key 'num_heads'");
  EXPECT_ERROR_WITH(ModelConfig::from_json("{" + base + R"(, "num_heads": 4, "num_head": 4})"),
                    "unknown key 'num_head'");
  EXPECT_ERROR_WITH(ModelConfig::from_json("{" + base + R"(, "num_heads": "4"})"), "'num_heads' must be an integer");
  EXPECT_ERROR_WITH(ModelConfig::from_json("{" + base + R"(, "num_heads": 4.5})"), "'num_heads' must be an integer");
  EXPECT_ERROR_WITH(ModelConfig::from_json("{" + base + R"(, "num_heads": 4, "learn_sigma": 1})"),
                    "'learn_sigma' must be true or false");
  EXPECT_ERROR_WITH(ModelConfig::from_json("{" + base + R"(, "num_heads": 4, "attention": "flash"})"),
                    "'attention' must be \"softmax\" or \"linear\"");
  EXPECT_ERROR_WITH(ModelConfig::from_json("{" + base + R"(, "num_heads": 4, "dwc_kernel": 5})"),
                    "'dwc_kernel' only applies");
  EXPECT_ERROR_WITH(ModelConfig::from_json("{" + base + R"(, "num_heads": 3})"), "not divisible by num_heads 3");
  EXPECT_ERROR_WITH(ModelConfig::from_json("[1, 2]"), "expected a JSON object");
  EXPECT_ERROR_WITH(ModelConfig::from_json("{oops"), "not valid JSON");
  EXPECT_ERROR_WITH(ModelConfig::from_json_file(test::fixture("lit/config.json")), "lit/config.json");
  EXPECT_ERROR_WITH(ModelConfig::from_json_file("/nonexistent/config.json"), "cannot open");
  // "note" and "_..." keys are comments.
  EXPECT_NO_THROW(ModelConfig::from_json("{" + base + R"(, "num_heads": 4, "note": "x", "_source": 1})"));
}

}  // namespace
}  // namespace lit
