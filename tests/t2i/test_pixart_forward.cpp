// The tiny PixArt-Σ of tests/fixtures/t2i/pixart_tiny against the official PixArtMS outputs, from each layout.
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <map>

#include "model/t2i/pixart_io.h"
#include "tests/t2i/t2i_test_util.h"

namespace lit {
namespace {

using test::max_rel;
using test::t2i_tensor;

constexpr const char* kIo = "pixart_tiny/pixart_tiny_io.safetensors";

at::Tensor io(const std::string& name) {
  return t2i_tensor(kIo, name);
}

// Every fixture output of the official code, from one loaded model.
void expect_fixture_outputs(PixArtMS& model, const std::string& what) {
  at::NoGradGuard no_grad;
  const at::Tensor t = io("t"), y = io("y"), mask = io("mask");
  EXPECT_LE(max_rel(model->forward(io("x_8x8"), t, y, mask), io("out_8x8")), 1e-5) << what;
  EXPECT_LE(max_rel(model->forward(io("x_12x8"), t, y, mask), io("out_12x8")), 1e-5) << what;
  EXPECT_LE(
      max_rel(model->forward_with_cfg(io("cfg_x"), io("cfg_t"), io("cfg_y"), 4.5, io("cfg_mask")), io("out_cfg_8x8")),
      1e-5)
      << what;
  EXPECT_LE(max_rel(model->forward_eps(io("x_8x8"), t, y, mask), io("out_dpmsolver_8x8")), 1e-5) << what;
}

TEST(PixArtForward, PositionTablesForSquareAndNonSquareGrids) {
  EXPECT_LE(max_rel(t2i::pixart_pos_embed(64, 4, 4, 1.0, 4), io("pos_embed_4x4")), 1e-6);
  EXPECT_LE(max_rel(t2i::pixart_pos_embed(64, 6, 4, 1.0, 4), io("pos_embed_6x4")), 1e-6);
  // The checkpoint's own buffer is the 4x4 table too (it is not used, but it must agree).
  EXPECT_LE(max_rel(t2i::pixart_pos_embed(64, 4, 4, 1.0, 4),
                    t2i_tensor("pixart_tiny/pixart_tiny.safetensors", "pos_embed").squeeze(0)),
            1e-6);
  // w is the first half of the channels: a 1x4 grid varies only there.
  const at::Tensor row = t2i::pixart_pos_embed(64, 1, 4, 1.0, 4);
  EXPECT_GT((row[1] - row[0]).narrow(0, 0, 32).abs().max().item<double>(), 0.1);
  EXPECT_EQ((row[1] - row[0]).narrow(0, 32, 32).abs().max().item<double>(), 0.0);
}

TEST(PixArtForward, OfficialPthWithConfigBeside) {
  LoadedPixArt m = load_pixart(test::fixture("t2i/pixart_tiny/pixart_tiny.pth"));
  EXPECT_EQ(m.config, test::tiny_pixart_config());
  EXPECT_EQ(m.layout, "official");
  EXPECT_EQ(m.format, "torch zip");
  EXPECT_EQ(m.weights_key, "state_dict");
  EXPECT_TRUE(m.has_null_caption);
  EXPECT_TRUE(m.report.missing.empty());
  expect_fixture_outputs(m.model, "pth");
}

TEST(PixArtForward, OfficialSafetensors) {
  PixArtLoadOptions options;
  options.config = test::tiny_pixart_config();
  LoadedPixArt m = load_pixart(test::fixture("t2i/pixart_tiny/pixart_tiny.safetensors"), options);
  EXPECT_EQ(m.layout, "official");
  expect_fixture_outputs(m.model, "safetensors");
  // The null caption is the checkpoint's buffer.
  EXPECT_TRUE(m.model->y_embedder->y_embedding.equal(
      t2i_tensor("pixart_tiny/pixart_tiny.safetensors", "y_embedder.y_embedding")));
}

TEST(PixArtForward, DiffusersFolder) {
  PixArtLoadOptions options;
  LoadedPixArt m = load_pixart(test::fixture("t2i/pixart_tiny/diffusers"), options);
  EXPECT_EQ(m.layout, "diffusers");
  EXPECT_EQ(m.config.hidden_size, 64);
  EXPECT_EQ(m.config.num_heads, 4);
  EXPECT_EQ(m.config.pe_interpolation, 1.0);
  EXPECT_FALSE(m.has_null_caption);
  ASSERT_EQ(m.report.missing, std::vector<std::string>{"y_embedder.y_embedding"});
  at::NoGradGuard no_grad;
  const at::Tensor t = io("t"), y = io("y"), mask = io("mask");
  const at::Tensor out8 = m.model->forward(io("x_8x8"), t, y, mask);
  const at::Tensor out12 = m.model->forward(io("x_12x8"), t, y, mask);
  EXPECT_LE(max_rel(out8, io("out_8x8")), 1e-5);
  EXPECT_LE(max_rel(out12, io("out_12x8")), 1e-5);
  EXPECT_LE(max_rel(out8, io("diffusers_out_8x8")), 1e-5);
  EXPECT_LE(max_rel(out12, io("diffusers_out_12x8")), 1e-5);
  EXPECT_LE(max_rel(m.model->forward_eps(io("x_8x8"), t, y, mask), io("out_dpmsolver_8x8")), 1e-5);
  // forward_with_cfg with the official null caption (cfg_y holds it) needs no y_embedding.
  EXPECT_LE(
      max_rel(m.model->forward_with_cfg(io("cfg_x"), io("cfg_t"), io("cfg_y"), 4.5, io("cfg_mask")), io("out_cfg_8x8")),
      1e-5);
}

TEST(PixArtForward, IntermediateActivations) {
  LoadedPixArt m = load_pixart(test::fixture("t2i/pixart_tiny/pixart_tiny.pth"));
  std::map<std::string, at::Tensor> seen;
  m.model->set_trace([&](const std::string& name, const at::Tensor& v) { seen[name] = v.clone(); });
  at::NoGradGuard no_grad;
  m.model->forward(io("x_8x8"), io("t"), io("y"), io("mask"));
  const std::vector<std::string> names = {"x_embedder_out_before_pos",
                                          "t_embedder_out",
                                          "t_block_out",
                                          "y_embedder_out",
                                          "block0_attn_out",
                                          "block0_cross_attn_out",
                                          "block0_out",
                                          "block1_attn_out",
                                          "block1_cross_attn_out",
                                          "block1_out",
                                          "final_layer_out"};
  for (const std::string& name : names) {
    ASSERT_TRUE(seen.count(name)) << name;
    EXPECT_LE(max_rel(seen[name], io("act_8x8_" + name)), 1e-5) << name;
  }
}

TEST(PixArtForward, MaskEqualsTokenDroppingAndPadRowsNeverMatter) {
  LoadedPixArt m = load_pixart(test::fixture("t2i/pixart_tiny/pixart_tiny.pth"));
  at::NoGradGuard no_grad;
  const at::Tensor x = io("x_8x8"), t = io("t"), y = io("y"), mask = io("mask");
  // Pad rows of y set to huge values or NaN change nothing.
  at::Tensor poisoned = y.clone();
  poisoned.masked_fill_((mask.view({2, 1, 24, 1}) == 0), std::numeric_limits<float>::quiet_NaN());
  EXPECT_LE(max_rel(m.model->forward(x, t, poisoned, mask), io("out_8x8")), 1e-5);
  // A (B, L) mask works like (B, 1, 1, L); sample 0 alone with its 4 tokens cut out equals its row.
  EXPECT_LE(max_rel(m.model->forward(x, t, y, mask.view({2, 24})), io("out_8x8")), 1e-5);
  const int64_t n0 = mask[0].sum().item<int64_t>();
  const at::Tensor cut = y.narrow(0, 0, 1).narrow(2, 0, n0);
  EXPECT_LE(max_rel(m.model->forward(x.narrow(0, 0, 1), t.narrow(0, 0, 1), cut), io("out_8x8").narrow(0, 0, 1)), 1e-5);
  // Without a mask every token is used: the output moves (the caption path is exercised).
  EXPECT_GT(max_rel(m.model->forward(x, t, y), io("out_8x8")), 1e-2);
}

TEST(PixArtForward, BadInputsOneClearLine) {
  LoadedPixArt m = load_pixart(test::fixture("t2i/pixart_tiny/pixart_tiny.pth"));
  const at::Tensor x = io("x_8x8"), t = io("t"), y = io("y"), mask = io("mask");
  EXPECT_NE(test::error_of([&] { m.model->forward(x.narrow(2, 0, 7), t, y, mask); }).find("multiples of 2"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { m.model->forward(x, t, y.narrow(3, 0, 32), mask); }).find("captions must be"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              m.model->forward(x, t, y, at::zeros({2, 24}, at::kLong));
            }).find("no real token"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { m.model->forward(x, t, y, mask.narrow(3, 0, 20)); }).find("caption mask"),
            std::string::npos);
}

}  // namespace
}  // namespace lit
