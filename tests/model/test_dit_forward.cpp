// The DiT/LiT forward pass against outputs of the reference PyTorch code (fixtures/dit, fixtures/lit), and
// configurations beyond the fixtures.
#include <gtest/gtest.h>

#include "kernels/runtime/cuda_support.h"
#include "model/backbone/dit.h"
#include "model/backbone/model_io.h"
#include "tests/model/model_test_util.h"
#include "common/error.h"

namespace lit {
namespace {

// ---------------------------------------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------------------------------------
TEST(DiTEmbeddings, TimestepFeaturesMatchTheReference) {
  const StateDict io = test::read_safetensors(test::fixture("dit/dit_tiny_io.safetensors"));
  const at::Tensor t_freq = dit::timestep_embedding(io.at("t"), 256);
  EXPECT_EQ(t_freq.scalar_type(), at::kFloat);
  EXPECT_LE(test::rel_error(t_freq, io.at("t_freq")), 1e-5);  // float32 sin/cos of t f up to ~1000
  // Fractional timesteps and an odd dimension (zero last column).
  const at::Tensor odd = dit::timestep_embedding(at::tensor({0.5, 10.25}, at::kDouble), 7);
  ASSERT_EQ(odd.sizes(), (at::IntArrayRef{2, 7}));
  EXPECT_EQ(odd[0][6].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(odd[1][0].item<float>(), std::cos(10.25f));
  EXPECT_FLOAT_EQ(odd[1][3].item<float>(), std::sin(10.25f));
}

TEST(DiTEmbeddings, PositionTableMatchesTheReference) {
  const StateDict io = test::read_safetensors(test::fixture("dit/dit_tiny_io.safetensors"));
  DiT model(test::tiny_dit_config());
  EXPECT_LE(test::rel_error(model->pos_embed, io.at("pos_embed")), 1e-7);
  EXPECT_EQ(model->pos_embed.sizes(), (at::IntArrayRef{1, 16, 64}));
  // Layout: first half of the channels encodes the column, second half the row.
  const at::Tensor table = dit::sincos_pos_embed_2d(8, 3);  // token 5 = row 1, column 2
  EXPECT_DOUBLE_EQ(table[5][0].item<double>(), std::sin(2.0));
  EXPECT_DOUBLE_EQ(table[5][2].item<double>(), std::cos(2.0));
  EXPECT_DOUBLE_EQ(table[5][4].item<double>(), std::sin(1.0));
  EXPECT_DOUBLE_EQ(table[5][7].item<double>(), std::cos(1.0 / 100.0));
}

TEST(DiTEmbeddings, LabelDropUsesTheNullClass) {
  dit::LabelEmbedder labels(10, 16, 0.1, at::kFloat);
  dit::normal_(labels->embedding_table->weight, 1.0);  // layers alone are uninitialised (the model initialises)
  const at::Tensor y = at::tensor({3, 4, 5}, at::kLong);
  const at::Tensor dropped = labels->token_drop(y, at::tensor({0, 1, 0}, at::kLong));
  EXPECT_TRUE(at::equal(dropped, at::tensor({3, 10, 5}, at::kLong)));
  at::NoGradGuard no_grad;
  const at::Tensor e = labels->forward(y, /*train=*/false, at::tensor({1, 1, 1}, at::kLong));
  EXPECT_TRUE(at::equal(e[0], labels->embedding_table->weight[10]));
  // Without dropout there is no null row and nothing is dropped in training.
  dit::LabelEmbedder plain(10, 16, 0.0, at::kFloat);
  dit::normal_(plain->embedding_table->weight, 1.0);
  EXPECT_EQ(plain->embedding_table->weight.size(0), 10);
  EXPECT_TRUE(at::equal(plain->forward(y, /*train=*/true), plain->embedding_table->weight.index_select(0, y)));
}

// ---------------------------------------------------------------------------------------------------------
// Tiny DiT and LiT against the reference outputs
// ---------------------------------------------------------------------------------------------------------
void expect_matches_io(DiT& model, const std::string& io_path, double tol) {
  const StateDict io = test::read_safetensors(io_path);
  const StateDict dit_io = test::read_safetensors(test::fixture("dit/dit_tiny_io.safetensors"));
  model->eval();
  at::NoGradGuard no_grad;
  const at::Tensor out = model->forward(io.at("x"), io.at("t"), io.at("y"));
  EXPECT_LE(test::rel_error(out, io.at("out")), tol) << io_path;
  const double cfg_scale = dit_io.at("cfg_scale").item<double>();  // the LiT file uses the DiT's inputs
  const at::Tensor cfg = model->forward_with_cfg(io.at("cfg_x"), io.at("cfg_t"), io.at("cfg_y"), cfg_scale);
  EXPECT_LE(test::rel_error(cfg, io.at("cfg_out")), tol) << io_path;
}

TEST(DiTForward, TinyDiTFromHalfPrecisionWeights) {
  // Weights rounded to float16 by the fixture: close to the float32 reference, not exact.
  DiT model(test::tiny_dit_config(), at::kFloat, /*initialize=*/false);
  load_state_dict(model, test::read_safetensors(test::fixture("dit/dit_tiny_fp16.safetensors")));
  expect_matches_io(model, test::fixture("dit/dit_tiny_io.safetensors"), 2e-3);
}

TEST(DiTForward, TinyDiTMatchesTheReference) {
  LoadedModel m = load_model(test::fixture("dit/dit_tiny.pt"), {test::tiny_dit_config()});
  expect_matches_io(m.model, test::fixture("dit/dit_tiny_io.safetensors"), 1e-5);
}

TEST(DiTForward, TinyLiTMatchesTheReference) {
  LoadedModel m = load_model(test::fixture("lit/lit_tiny.pt"), {test::tiny_lit_config()});
  EXPECT_TRUE(m.model->config().is_linear());
  expect_matches_io(m.model, test::fixture("lit/lit_tiny_io.safetensors"), 1e-5);
}

// ---------------------------------------------------------------------------------------------------------
// Classifier-free guidance
// ---------------------------------------------------------------------------------------------------------
TEST(DiTForward, GuidanceIsDiTsFormulaOnTheFirstThreeChannels) {
  DiT model = test::random_model(test::tiny_dit_config(), 4);
  model->eval();
  at::NoGradGuard no_grad;
  const at::Tensor x = at::randn({2, 4, 8, 8}), t = at::tensor({7, 7}), y = at::tensor({3, 10});
  const double s = 4.0;
  const at::Tensor both = model->forward(at::cat({x.narrow(0, 0, 1), x.narrow(0, 0, 1)}), t, y);
  const at::Tensor cond = both.narrow(0, 0, 1), uncond = both.narrow(0, 1, 1);
  const at::Tensor guided = uncond + s * (cond - uncond);

  const at::Tensor dit_style = model->forward_with_cfg(x, t, y, s);
  ASSERT_EQ(dit_style.sizes(), (at::IntArrayRef{2, 8, 8, 8}));
  for (int64_t half = 0; half < 2; ++half) {
    EXPECT_TRUE(at::allclose(dit_style[half].narrow(0, 0, 3), guided[0].narrow(0, 0, 3)));
    // The 4th latent channel and the variance channels are the un-guided passes, batch row by batch row.
    EXPECT_TRUE(at::equal(dit_style[half].narrow(0, 3, 5), both[half].narrow(0, 3, 5)));
  }
  const at::Tensor standard = model->forward_with_cfg(x, t, y, s, /*all_channels=*/true);
  for (int64_t half = 0; half < 2; ++half) {
    EXPECT_TRUE(at::allclose(standard[half].narrow(0, 0, 4), guided[0].narrow(0, 0, 4)));
    EXPECT_TRUE(at::equal(standard[half].narrow(0, 4, 4), both[half].narrow(0, 4, 4)));
  }
  EXPECT_THROW(model->forward_with_cfg(at::randn({3, 4, 8, 8}), at::zeros({3}), at::zeros({3}, at::kLong), s), Error);
}

// ---------------------------------------------------------------------------------------------------------
// Configurations beyond the fixtures
// ---------------------------------------------------------------------------------------------------------
TEST(DiTForward, OtherConfigurationsBuildAndRun) {
  struct Case {
    const char* what;
    void (*change)(ModelConfig&);
  };
  const Case cases[] = {
      {"patch 4", [](ModelConfig& c) { c.patch_size = 4; }},
      {"patch 1, 12x12 input", [](ModelConfig& c) { c.patch_size = 1, c.input_size = 12; }},
      {"3 channels (pixels)", [](ModelConfig& c) { c.in_channels = 3; }},
      {"1 channel, no learned sigma", [](ModelConfig& c) { c.in_channels = 1, c.learn_sigma = false; }},
      {"mlp ratio 2.5", [](ModelConfig& c) { c.mlp_ratio = 2.5; }},
      {"7 classes", [](ModelConfig& c) { c.num_classes = 7; }},
      {"no null class", [](ModelConfig& c) { c.class_dropout_prob = 0; }},
      {"1 head", [](ModelConfig& c) { c.num_heads = 1; }},
      {"8 heads, width 96, depth 3", [](ModelConfig& c) { c.num_heads = 8, c.hidden_size = 96, c.depth = 3; }},
      {"linear, 1 head", [](ModelConfig& c) { c.attention = AttentionType::Linear, c.num_heads = 1; }},
      {"linear, 4 heads, dwc 3", [](ModelConfig& c) { c.attention = AttentionType::Linear, c.dwc_kernel = 3; }},
      {"linear, patch 4, 12x12 (3x3 tokens)",
       [](ModelConfig& c) { c.attention = AttentionType::Linear, c.patch_size = 4, c.input_size = 12; }},
  };
  for (const Case& k : cases) {
    ModelConfig config = test::tiny_dit_config();
    k.change(config);
    DiT model = test::random_model(config, 5);
    model->eval();
    at::NoGradGuard no_grad;
    const int64_t B = 4, S = config.input_size;
    const at::Tensor x = at::randn({B, config.in_channels, S, S});
    const at::Tensor t = at::tensor({0, 10, 500, 999});
    const at::Tensor y = at::tensor(std::vector<int64_t>{0, 1, config.num_classes - 1, config.label_table_rows() - 1});
    const at::Tensor out = model->forward(x, t, y);
    EXPECT_EQ(out.sizes(), (at::IntArrayRef{B, config.out_channels(), S, S})) << k.what;
    EXPECT_TRUE(at::isfinite(out).all().item<bool>()) << k.what;
    const at::Tensor cfg = model->forward_with_cfg(x, t, y, 1.5);
    EXPECT_EQ(cfg.sizes(), out.sizes()) << k.what;
    // The DiT init: the zeroed output layer predicts zeros.
    DiT fresh(config);
    EXPECT_EQ(fresh->forward(x, t, y).abs().max().item<float>(), 0.0f) << k.what;
  }
}

// Each output pixel depends on its own input patch through the position-wise layers and on the others only
// through attention: unpatchify must invert the patch embedding's layout.
TEST(DiTForward, UnpatchifyInvertsThePatchLayout) {
  ModelConfig c = test::tiny_dit_config();
  c.patch_size = 4;
  DiT model(c, at::kFloat);
  const int64_t p = 4, h = 2, C = c.out_channels();
  const at::Tensor tokens = at::arange(h * h * p * p * C, at::kFloat).reshape({1, h * h, p * p * C});
  const at::Tensor img = model->unpatchify(tokens);
  ASSERT_EQ(img.sizes(), (at::IntArrayRef{1, C, 8, 8}));
  // Token (row i, col j) holds (p, q, c) at index (p*P + q)*C + c -> pixel (c, i*P + p, j*P + q).
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < h; ++j)
      for (int64_t pp = 0; pp < p; ++pp)
        for (int64_t q = 0; q < p; ++q)
          for (int64_t ch = 0; ch < C; ++ch)
            ASSERT_EQ(img[0][ch][i * p + pp][j * p + q].item<float>(),
                      tokens[0][i * h + j][(pp * p + q) * C + ch].item<float>());
}

TEST(DiTForward, BadInputsAreClearErrors) {
  DiT model(test::tiny_dit_config());
  const at::Tensor t = at::zeros({2}), y = at::zeros({2}, at::kLong);
  EXPECT_THROW(model->forward(at::randn({2, 3, 8, 8}), t, y), Error);
  EXPECT_THROW(model->forward(at::randn({2, 4, 16, 16}), t, y), Error);
  EXPECT_THROW(model->forward(at::randn({2, 4, 8, 8}), at::zeros({3}), y), Error);
  EXPECT_THROW(model->forward(at::randn({2, 4, 8, 8}), t, at::zeros({2})), Error);
  try {
    model->forward(at::randn({2, 4, 8, 8}), t, at::tensor({1, 11}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("labels must be in [0, 10] (10 is the null class), got 11"), std::string::npos)
        << e.what();
  }
}

TEST(DiTForward, InitialisationFollowsDiT) {
  at::manual_seed(0);
  ModelConfig c = test::tiny_lit_config();
  DiT model(c);
  const auto& b0 = model->blocks[0];
  EXPECT_EQ(b0->adaLN_modulation->weight.abs().max().item<float>(), 0.0f);
  EXPECT_EQ(model->final_layer->linear->weight.abs().max().item<float>(), 0.0f);
  EXPECT_EQ(model->final_layer->adaLN_modulation->bias.abs().max().item<float>(), 0.0f);
  EXPECT_NEAR(model->y_embedder->embedding_table->weight.std().item<float>(), 0.02, 0.004);
  EXPECT_NEAR(model->t_embedder->mlp0->weight.std().item<float>(), 0.02, 0.004);
  // Xavier uniform: bound sqrt(6 / (fan_in + fan_out)); the patch embedding viewed as (D, C p p).
  auto* attn = dynamic_cast<dit::LinearAttention*>(b0->attn.get());
  ASSERT_NE(attn, nullptr);
  EXPECT_LE(attn->kv->weight.abs().max().item<float>(), std::sqrt(6.0 / (64 + 128)));
  EXPECT_GT(attn->kv->weight.abs().max().item<float>(), 0.9 * std::sqrt(6.0 / (64 + 128)));
  EXPECT_EQ(attn->kv->bias.abs().max().item<float>(), 0.0f);
  EXPECT_LE(model->x_embedder->proj->weight.abs().max().item<float>(), std::sqrt(6.0 / (16 + 64)));
  EXPECT_GT(model->x_embedder->proj->weight.abs().max().item<float>(), 0.9 * std::sqrt(6.0 / (16 + 64)));
  // The depthwise conv: PyTorch's default, U(-1/sqrt(25), 1/sqrt(25)) for weight and bias.
  EXPECT_LE(attn->dwc->weight.abs().max().item<float>(), 0.2f);
  EXPECT_GT(attn->dwc->weight.abs().max().item<float>(), 0.18f);
  EXPECT_NE(attn->dwc->bias.abs().max().item<float>(), 0.0f);
  // Same seed, same model.
  at::manual_seed(0);
  DiT again(c);
  EXPECT_TRUE(at::equal(again->blocks[1]->mlp->fc1->weight, model->blocks[1]->mlp->fc1->weight));
}

TEST(DiTForward, ReducedPrecisionModels) {
  DiT reference = test::random_model(test::tiny_lit_config(), 6);
  for (at::ScalarType dtype : {at::kBFloat16, at::kDouble}) {
    DiT model(test::tiny_lit_config(), dtype, /*initialize=*/false);
    load_state_dict(model, state_dict(reference));
    EXPECT_EQ(model->blocks[0]->mlp->fc1->weight.scalar_type(), dtype);
    at::NoGradGuard no_grad;
    const at::Tensor x = at::randn({2, 4, 8, 8}), t = at::tensor({3, 900}), y = at::tensor({1, 10});
    const at::Tensor out = model->forward(x, t, y);
    EXPECT_EQ(out.scalar_type(), dtype);
    EXPECT_LE(test::rel_error(out, reference->forward(x, t, y)), dtype == at::kDouble ? 1e-5 : 5e-2);
  }
  // Module::to converts in place: the model's tensors (pos_embed, the blocks') follow.
  DiT converted = test::random_model(test::tiny_lit_config(), 6);
  converted->to(at::kDouble);
  EXPECT_EQ(converted->dtype(), at::kDouble);
  EXPECT_EQ(converted->blocks[1]->mlp->fc2->weight.scalar_type(), at::kDouble);
  at::NoGradGuard no_grad;
  const at::Tensor x = at::randn({2, 4, 8, 8}), t = at::tensor({3, 900}), y = at::tensor({1, 10});
  EXPECT_LE(test::rel_error(converted->forward(x, t, y), reference->forward(x, t, y)), 1e-5);
}

// ---------------------------------------------------------------------------------------------------------
// CUDA: the same model on the GPU matches the CPU (skipped without a GPU).
// ---------------------------------------------------------------------------------------------------------
TEST(DiTForwardCuda, TinyDiTAndLiTMatchTheCpu) {
  if (!kernels::cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine: " << kernels::cuda_summary();
  for (const ModelConfig& config : {test::tiny_dit_config(), test::tiny_lit_config()}) {
    DiT cpu = test::random_model(config, 7);
    DiT gpu(config, at::TensorOptions().device(at::kCUDA), /*initialize=*/false);
    load_state_dict(gpu, state_dict(cpu));
    cpu->eval();
    gpu->eval();
    at::NoGradGuard no_grad;
    const at::Tensor x = at::randn({4, 4, 8, 8}), t = at::tensor({1, 50, 500, 999}), y = at::tensor({0, 3, 9, 10});
    const at::Tensor ref = cpu->forward(x, t, y);
    const at::Tensor out = gpu->forward(x.cuda(), t.cuda(), y.cuda());
    EXPECT_TRUE(out.is_cuda());
    EXPECT_LE(test::rel_error(out, ref), 1e-4) << config.summary();
    // Inputs on the CPU are moved to the model's device.
    EXPECT_LE(test::rel_error(gpu->forward(x, t, y), ref), 1e-4);
    EXPECT_LE(
        test::rel_error(gpu->forward_with_cfg(x.cuda(), t.cuda(), y.cuda(), 4.0), cpu->forward_with_cfg(x, t, y, 4.0)),
        1e-4);
  }
}

}  // namespace
}  // namespace lit
