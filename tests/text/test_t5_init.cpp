// A T5 encoder made from scratch (model/text/t5_init.h): transformers' initialisation formulas, the T5 folder
// it is saved as (loaded back bit for bit by the loader and TextEncoder, named as transformers names the tiny
// fixture's tensors), config.json read back to the same config, gradients reaching every tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "model/text/t5_config.h"
#include "model/text/t5_init.h"
#include "model/text/t5_loader.h"
#include "model/text/text_encoder.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"

namespace fs = std::filesystem;

namespace lit {
namespace {

using namespace lit::text;
using test::fixture;

const std::string kSpiece = fixture("t2i/t5_tiny/single/spiece.model");

// The tiny fixture encoder's shape (d_model 64, 3 layers, 4 heads x 16, d_ff 160, gated-gelu, vocab 1100).
T5Config tiny_config() {
  return read_t5_config(fixture("t2i/t5_tiny/single/config.json"));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(T5Init, DrawsEveryTensorWithTransformersStd) {
  T5Config c = tiny_config();
  c.vocab_size = 4000;  // enough draws for the embedding's std to be measured closely
  c.d_ff = 640;
  T5InitOptions o;
  o.seed = 11;
  const T5EncoderModel enc = init_t5_encoder(c, o);
  const double d_model = 64, d_kv = 16, heads = 4, d_ff = 640;
  size_t checked = 0;
  for (const auto& [name, t] : t5_named_parameters(enc)) {
    EXPECT_TRUE(t.requires_grad()) << name;
    EXPECT_TRUE(t.is_leaf()) << name;
    EXPECT_EQ(t.scalar_type(), at::kFloat) << name;
    double expected = 0;
    if (name == "shared.weight")
      expected = 1.0;
    else if (name.find("layer_norm") != std::string::npos)
      expected = -1;
    else if (name.find(".q.weight") != std::string::npos)
      expected = 1 / std::sqrt(d_model * d_kv);
    else if (name.find(".k.weight") != std::string::npos || name.find(".v.weight") != std::string::npos)
      expected = 1 / std::sqrt(d_model);
    else if (name.find(".o.weight") != std::string::npos)
      expected = 1 / std::sqrt(heads * d_kv);
    else if (name.find("relative_attention_bias") != std::string::npos)
      expected = 1 / std::sqrt(d_model);
    else if (name.find(".wi_0.") != std::string::npos || name.find(".wi_1.") != std::string::npos)
      expected = 1 / std::sqrt(d_model);
    else if (name.find(".wo.") != std::string::npos)
      expected = 1 / std::sqrt(d_ff);
    ASSERT_NE(expected, 0) << "no expectation for " << name;
    if (expected < 0) {
      EXPECT_TRUE(at::equal(t, at::ones_like(t))) << name;
    } else {
      // n draws: the sample std is within ~4 / sqrt(2n) of the true one (relative) with near certainty.
      const double n = static_cast<double>(t.numel());
      EXPECT_NEAR(t.std().item<double>() / expected, 1.0, 4.0 / std::sqrt(2 * n) + 1e-3) << name;
      EXPECT_NEAR(t.mean().item<double>() / expected, 0.0, 4.0 / std::sqrt(n)) << name;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 30u);  // shared, 3 blocks (10 + 9 + 9), final norm

  // The factor scales every tensor exactly; the seed decides the draws.
  o.initializer_factor = 2.0;
  const auto doubled = t5_named_parameters(init_t5_encoder(c, o));
  const auto base = t5_named_parameters(enc);
  for (size_t i = 0; i < base.size(); ++i)
    EXPECT_TRUE(at::equal(doubled[i].second, 2 * base[i].second.detach())) << base[i].first;
  o.initializer_factor = 1.0;
  EXPECT_TRUE(at::equal(t5_parameters(init_t5_encoder(c, o))[0], base[0].second));
  o.seed = 12;
  EXPECT_FALSE(at::equal(t5_parameters(init_t5_encoder(c, o))[0], base[0].second));
  EXPECT_NE(test::error_of([&] {
              T5InitOptions bad;
              bad.initializer_factor = 0;
              init_t5_encoder(c, bad);
            }).find("initializer_factor must be positive"),
            std::string::npos);
}

TEST(T5Init, SavedFolderLoadsBackBitForBit) {
  const T5Config c = tiny_config();
  T5InitOptions o;
  o.seed = 3;
  const T5EncoderModel enc = init_t5_encoder(c, o);
  const std::string dir = test::fresh_temp_dir("t5");
  save_t5_folder(dir + "/", enc, kSpiece);  // a trailing slash names the same folder
  EXPECT_FALSE(fs::exists(dir + ".partial"));
  EXPECT_EQ(read_bytes(dir + "/spiece.model"), read_bytes(kSpiece));

  // The tensor names are exactly those transformers wrote for the fixture encoder of this shape.
  const SafetensorsFile mine = SafetensorsFile::open(dir + "/model.safetensors");
  const SafetensorsFile theirs = SafetensorsFile::open(fixture("t2i/t5_tiny/single/model.safetensors"));
  const auto names_of = [](const SafetensorsFile& f) {
    std::set<std::string> out;
    for (const auto& e : f.entries()) out.insert(e.name);
    return out;
  };
  EXPECT_EQ(names_of(mine), names_of(theirs));
  EXPECT_EQ(mine.metadata().at("format"), "pt");

  const T5EncoderModel loaded = load_t5_encoder(find_t5_files(dir), at::kCPU, at::kFloat);
  const auto a = t5_named_parameters(enc), b = t5_named_parameters(loaded);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(at::equal(a[i].second, b[i].second)) << a[i].first;
  }
  // The same outputs through TextEncoder (tokenizer + loader), as generation loads it.
  TextEncoderOptions to;
  to.max_length = 24;
  const TextEncoder te = TextEncoder::load(dir, to);
  const TextEmbeddings e = te.encode({"a red cube", "a small blue bag above a large yellow dress"});
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(e.embeddings, enc.forward(e.input_ids, e.attention_mask)));
  EXPECT_GT(e.embeddings.abs().sum().item<double>(), 0.0);

  // Saving again replaces the folder.
  o.seed = 4;
  save_t5_folder(dir, init_t5_encoder(c, o), kSpiece);
  const T5EncoderModel again = load_t5_encoder(find_t5_files(dir), at::kCPU, at::kFloat);
  EXPECT_FALSE(at::equal(t5_parameters(again)[0], t5_parameters(enc)[0]));
}

TEST(T5Init, ConfigJsonRoundTripsAndSpeaksTransformersKeys) {
  T5Config c;
  c.vocab_size = 1100;
  c.d_model = 48;
  c.d_kv = 12;
  c.d_ff = 96;
  c.num_layers = 2;
  c.num_heads = 3;
  c.relative_attention_num_buckets = 16;
  c.relative_attention_max_distance = 64;
  c.layer_norm_epsilon = 1e-5;
  for (const std::string ff : {"relu", "gated-gelu", "gated-silu"}) {
    c.feed_forward_proj = ff;
    const std::string text = t5_config_json(c, 0.5);
    const T5Config back = parse_t5_config(text, "config.json");
    EXPECT_EQ(back.summary(), c.summary()) << ff;
    EXPECT_EQ(back.layer_norm_epsilon, c.layer_norm_epsilon);
    const nlohmann::json j = nlohmann::json::parse(text);
    EXPECT_EQ(j["model_type"], "t5");
    EXPECT_EQ(j["architectures"], nlohmann::json::array({"T5EncoderModel"}));
    EXPECT_EQ(j["initializer_factor"], 0.5);
    EXPECT_EQ(j["dropout_rate"], 0.0);
    EXPECT_EQ(j["pad_token_id"], 0);
    EXPECT_EQ(j["eos_token_id"], 1);
    EXPECT_EQ(j["is_gated_act"], ff != "relu");
    EXPECT_EQ(j["dense_act_fn"], ff == "relu" ? "relu" : ff == "gated-gelu" ? "gelu_new" : "silu");
  }
  // For the fixture's shape, every key transformers wrote that we write too has transformers' value (but the
  // dropout, which the joint training does not use).
  const nlohmann::json ref = nlohmann::json::parse(read_bytes(fixture("t2i/t5_tiny/single/config.json")));
  const nlohmann::json ours = nlohmann::json::parse(t5_config_json(tiny_config(), 1.0));
  size_t shared = 0;
  for (const auto& [key, value] : ours.items()) {
    if (!ref.contains(key) || key == "dropout_rate") continue;
    EXPECT_EQ(value, ref[key]) << key;
    ++shared;
  }
  EXPECT_GE(shared, 18u);
}

TEST(T5Init, InitConfigTakesTheTokenizersVocabularyWhenAbsent) {
  const std::string dir = test::fresh_temp_dir("cfg");
  fs::create_directories(dir);
  std::ofstream(dir + "/a.json") << R"({"d_model": 32, "d_kv": 8, "num_heads": 4, "d_ff": 64, "num_layers": 2,
    "feed_forward_proj": "gated-gelu", "initializer_factor": 0.5})";
  const T5InitConfig a = read_t5_init_config(dir + "/a.json", 1100);
  EXPECT_EQ(a.config.vocab_size, 1100);
  EXPECT_EQ(a.config.d_model, 32);
  EXPECT_EQ(a.initializer_factor, 0.5);
  std::ofstream(dir + "/b.json") << R"({"d_model": 32, "vocab_size": 2000})";
  EXPECT_EQ(read_t5_init_config(dir + "/b.json", 1100).config.vocab_size, 2000);
  EXPECT_EQ(read_t5_init_config(dir + "/b.json", 1100).initializer_factor, 1.0);
  std::ofstream(dir + "/c.json") << R"({"d_model": 32, "initializer_factor": -1})";
  const std::string e = test::error_of([&] { read_t5_init_config(dir + "/c.json", 1100); });
  EXPECT_NE(e.find(dir + "/c.json: 'initializer_factor' must be a positive number"), std::string::npos) << e;
}

TEST(T5Init, GradientsReachEveryTensor) {
  T5InitOptions o;
  o.seed = 5;
  const T5EncoderModel enc = init_t5_encoder(tiny_config(), o);
  at::manual_seed(0);
  const at::Tensor ids = at::randint(3, 1000, {2, 12}, at::kLong);
  const at::Tensor mask = (at::arange(12).unsqueeze(0) < at::tensor({7, 12}).unsqueeze(1)).to(at::kLong);
  const at::Tensor out = enc.forward(ids, mask);
  (out * at::randn(out.sizes())).sum().backward();
  for (const auto& [name, t] : t5_named_parameters(enc)) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_GT(t.grad().abs().sum().item<double>(), 0.0) << name;
    EXPECT_TRUE(at::isfinite(t.grad()).all().item<bool>()) << name;
  }
  // The embedding rows of tokens never seen get no gradient.
  const at::Tensor g = t5_parameters(enc)[0].grad();
  EXPECT_EQ(g[1050].abs().sum().item<double>(), 0.0);

  // A clone has tensors of its own.
  const T5EncoderModel copy = clone_t5_encoder(enc);
  const at::Tensor w = t5_parameters(copy)[0];
  EXPECT_FALSE(w.requires_grad());
  EXPECT_TRUE(at::equal(w, t5_parameters(enc)[0]));
  {
    at::NoGradGuard no_grad;
    t5_parameters(enc)[0].add_(1.0);
  }
  EXPECT_FALSE(at::equal(w, t5_parameters(enc)[0]));
}

TEST(T5Init, SavingRefusesATokenizerLargerThanTheVocabulary) {
  T5Config c = tiny_config();
  c.vocab_size = 500;
  const std::string dir = test::fresh_temp_dir("small");
  const std::string e = test::error_of([&] { save_t5_folder(dir, init_t5_encoder(c), kSpiece); });
  EXPECT_NE(e.find(kSpiece + ": 1100 token ids (pieces + 100 sentinels), more than the encoder's vocab_size 500"),
            std::string::npos)
      << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_NE(test::error_of([&] { save_t5_folder(dir, init_t5_encoder(tiny_config()), dir + "/none.model"); }),
            "(no lit::Error)");
}

}  // namespace
}  // namespace lit
