// LiT-T2I (PixArt-Σ with LiT's linear self-attention) against lit_t2i_tiny, and weight inheritance.
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <map>

#include "model/t2i/pixart_io.h"
#include "tests/t2i/t2i_test_util.h"

namespace lit {
namespace {

using test::max_rel;
using test::t2i_tensor;

at::Tensor io(const std::string& name) {
  return t2i_tensor("pixart_tiny/pixart_tiny_io.safetensors", name);
}
at::Tensor lit_io(const std::string& name) {
  return t2i_tensor("lit_t2i_tiny/lit_t2i_tiny_io.safetensors", name);
}

StateDict read_state_dict(const std::string& rel) {
  StateDict sd;
  for (auto& [name, tensor] : SafetensorsFile::open(test::fixture("t2i/" + rel)).tensors()) sd.insert(name, tensor);
  return sd;
}

void expect_lit_outputs(PixArtMS& model) {
  at::NoGradGuard no_grad;
  const at::Tensor t = io("t"), y = io("y"), mask = io("mask");
  EXPECT_LE(max_rel(model->forward(io("x_8x8"), t, y, mask), lit_io("out_8x8")), 1e-5);
  EXPECT_LE(max_rel(model->forward(io("x_12x8"), t, y, mask), lit_io("out_12x8")), 1e-5);
  EXPECT_LE(max_rel(model->forward_with_cfg(io("cfg_x"), io("cfg_t"), io("cfg_y"), 4.5, io("cfg_mask")),
                    lit_io("out_cfg_8x8")),
            1e-5);
  EXPECT_LE(max_rel(model->forward_eps(io("x_8x8"), t, y, mask), lit_io("out_dpmsolver_8x8")), 1e-5);
}

TEST(LitT2I, FixtureOutputsAndLinearAttentionActivations) {
  PixArtLoadOptions options;
  options.config = test::tiny_lit_config();
  LoadedPixArt m = load_pixart(test::fixture("t2i/lit_t2i_tiny/lit_t2i_tiny.safetensors"), options);
  ASSERT_TRUE(m.config.is_linear());
  EXPECT_NE(dynamic_cast<dit::LinearAttention*>(m.model->blocks[0]->attn.get()), nullptr);
  expect_lit_outputs(m.model);
  std::map<std::string, at::Tensor> seen;
  m.model->set_trace([&](const std::string& name, const at::Tensor& v) { seen[name] = v.clone(); });
  at::NoGradGuard no_grad;
  m.model->forward(io("x_8x8"), io("t"), io("y"), io("mask"));
  for (const char* name : {"block0_attn_out", "block1_attn_out"})
    EXPECT_LE(max_rel(seen[name], lit_io(std::string("act_8x8_") + name)), 1e-5) << name;
}

TEST(LitT2I, InheritanceFromPixArtPlusAttentionEqualsTheFixtureExactly) {
  const StateDict pixart = read_state_dict("pixart_tiny/pixart_tiny.safetensors");
  PixArtMS lit(test::tiny_lit_config(), at::kFloat, /*initialize=*/false);
  const LoadReport report = inherit_lit_t2i_from_pixart(lit, pixart);
  // 2 blocks x (q, kv, dwc, proj) x (weight, bias) initialised; qkv and proj of each block and pos_embed skipped.
  EXPECT_EQ(report.initialised.size(), 16u);
  EXPECT_EQ(report.skipped.size(), 9u);
  EXPECT_EQ(report.skipped_params, 2 * (192 * 64 + 192 + 64 * 64 + 64) + 16 * 64);
  EXPECT_TRUE(report.missing.empty());
  EXPECT_NE(report.to_string().find("initialised 16 tensors"), std::string::npos) << report.to_string();
  // Fresh attention: Xavier linears with zero biases.
  EXPECT_EQ(lit->blocks[0]->attn->named_parameters()["q.bias"].abs().max().item<double>(), 0.0);
  EXPECT_GT(lit->blocks[0]->attn->named_parameters()["q.weight"].abs().max().item<double>(), 0.0);

  const LoadReport attn = load_state_dict(lit, read_state_dict("lit_t2i_tiny/lit_t2i_attn.safetensors"), false);
  EXPECT_EQ(attn.loaded.size(), 16u);
  const StateDict expected = read_state_dict("lit_t2i_tiny/lit_t2i_tiny.safetensors");
  const StateDict got = state_dict(lit);
  for (const auto& [name, tensor] : expected) {
    if (name == "pos_embed") continue;  // not part of the model: recomputed for every grid
    ASSERT_TRUE(got.contains(name)) << name;
    EXPECT_TRUE(got.at(name).equal(tensor)) << name;
  }
  EXPECT_EQ(got.size() + 1, expected.size());
  lit->eval();
  expect_lit_outputs(lit);
}

TEST(LitT2I, LoadLitFromPixArtFileAndDefaults) {
  const LoadedPixArt m =
      load_lit_t2i_from_pixart(test::fixture("t2i/pixart_tiny/pixart_tiny.pth"), test::tiny_lit_config());
  EXPECT_EQ(m.report.loaded.size(), 38u);  // 47 official tensors less pos_embed and 8 of attention
  EXPECT_EQ(lit_t2i_config_from_pixart(test::tiny_pixart_config()).linear_heads, 2);
  EXPECT_EQ(lit_t2i_config_from_pixart(PixArtConfig::preset("PixArt-Sigma-XL/2", 1024)),
            PixArtConfig::preset("LiT-T2I-XL/2", 1024));
}

TEST(LitT2I, InheritanceRefusesShapeMismatchAndStrangers) {
  const StateDict pixart = read_state_dict("pixart_tiny/pixart_tiny.safetensors");
  PixArtMS lit(test::tiny_lit_config(), at::kFloat, /*initialize=*/false);
  StateDict wrong;
  for (const auto& [name, tensor] : pixart)
    wrong.insert(name, name == "blocks.1.mlp.fc1.weight" ? tensor.narrow(0, 0, 128) : tensor);
  const std::string msg = test::error_of([&] { inherit_lit_t2i_from_pixart(lit, wrong); });
  EXPECT_NE(msg.find("'blocks.1.mlp.fc1.weight' has shape [128, 64] in the PixArt checkpoint"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("expects [256, 64]"), std::string::npos) << msg;

  StateDict extra;
  for (const auto& [name, tensor] : pixart) extra.insert(name, tensor);
  extra.insert("blocks.2.mlp.fc1.weight", pixart.at("blocks.1.mlp.fc1.weight"));
  EXPECT_NE(test::error_of([&] { inherit_lit_t2i_from_pixart(lit, extra); }).find("same depth and width"),
            std::string::npos);
  // A softmax target is refused.
  EXPECT_NE(test::error_of([&] {
              load_lit_t2i_from_pixart(test::fixture("t2i/pixart_tiny/pixart_tiny.pth"), test::tiny_pixart_config());
            }).find("softmax attention"),
            std::string::npos);
  // Loading the PixArt strictly into a LiT points at inheritance.
  EXPECT_NE(test::error_of([&] { load_state_dict(lit, pixart, true); }).find("weight inheritance"), std::string::npos);
}

}  // namespace
}  // namespace lit
