// PixArt configs, checkpoint layouts (sharded diffusers folders, the project's safetensors), conversion, and
// the samplers of sampler.h driving a text model through a function.
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/t2i/pixart_diffusers.h"
#include "model/t2i/pixart_io.h"
#include "sampler/gaussian_diffusion.h"
#include "sampler/noise.h"
#include "sampler/sampler.h"
#include "sampler/text_guidance.h"
#include "tests/t2i/t2i_test_util.h"

namespace lit {
namespace {

namespace fs = std::filesystem;
using test::max_rel;

at::Tensor io(const std::string& name) {
  return test::t2i_tensor("pixart_tiny/pixart_tiny_io.safetensors", name);
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

// The fixture's diffusers folder re-written as `shards` safetensors shards with an index.
std::string sharded_copy(const std::string& dir, int shards) {
  fs::create_directories(dir);
  fs::copy_file(test::fixture("t2i/pixart_tiny/diffusers/config.json"), fs::path(dir) / "config.json");
  const auto all =
      SafetensorsFile::open(test::fixture("t2i/pixart_tiny/diffusers/diffusion_pytorch_model.safetensors")).tensors();
  nlohmann::json map = nlohmann::json::object();
  for (int s = 0; s < shards; ++s) {
    const std::string file =
        "diffusion_pytorch_model-0000" + std::to_string(s + 1) + "-of-0000" + std::to_string(shards) + ".safetensors";
    std::vector<std::pair<std::string, at::Tensor>> part;
    for (size_t i = static_cast<size_t>(s); i < all.size(); i += static_cast<size_t>(shards)) {
      part.push_back(all[i]);
      map[all[i].first] = file;
    }
    write_safetensors((fs::path(dir) / file).string(), part);
  }
  write_text(fs::path(dir) / "diffusion_pytorch_model.safetensors.index.json",
             nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", map}}.dump());
  return dir;
}

TEST(PixArtConfig, JsonRoundTripPresetsAndErrors) {
  for (const std::string& name : PixArtConfig::preset_names())
    for (int64_t px : {256, 512, 1024, 2048}) {
      const PixArtConfig c = PixArtConfig::preset(name, px);
      EXPECT_EQ(PixArtConfig::from_json(c.to_json()), c) << name << " " << px;
      EXPECT_EQ(c.preset_name(), name) << c.summary();
      EXPECT_TRUE(PixArtConfig::is_pixart_json(c.to_json()));
    }
  const PixArtConfig sigma = PixArtConfig::preset("PixArt-Sigma-XL/2", 1024);
  EXPECT_EQ(sigma.input_size, 128);
  EXPECT_EQ(sigma.pe_interpolation, 2.0);
  EXPECT_EQ(sigma.model_max_length, 300);
  EXPECT_EQ(PixArtConfig::preset("PixArt-Sigma-XL-2", 256).pe_interpolation, 0.5);
  EXPECT_EQ(PixArtConfig::preset("PixArt-Alpha-XL/2", 512).model_max_length, 120);
  EXPECT_TRUE(PixArtConfig::preset("PixArt-Alpha-XL/2", 1024).micro_condition);
  EXPECT_FALSE(PixArtConfig::preset("PixArt-Alpha-XL/2", 512).micro_condition);
  const PixArtConfig lit = PixArtConfig::preset("LiT-T2I-XL/2", 512);
  EXPECT_TRUE(lit.is_linear());
  EXPECT_EQ(lit.linear_heads, 4);
  EXPECT_EQ(lit.num_heads, 16);  // cross-attention
  EXPECT_EQ(test::tiny_pixart_config().preset_name(), "custom");
  // A DiT config is not a PixArt one, and the other way round.
  EXPECT_FALSE(PixArtConfig::is_pixart_json(ModelConfig::preset("DiT-XL/2").to_json()));
  EXPECT_NE(test::error_of([&] { ModelConfig::from_json(sigma.to_json()); }).find("unknown key"), std::string::npos);
  EXPECT_NE(test::error_of([&] { PixArtConfig::from_json(R"({"input_size": 8})"); }).find("missing key"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              PixArtConfig c = test::tiny_pixart_config();
              c.num_heads = 5;
              c.validate();
            }).find("not divisible by num_heads"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { PixArtConfig::preset("PixArt-Omega", 512); }).find("unknown model"),
            std::string::npos);
}

TEST(PixArtConfig, ReleasedShapesOnTheMetaDevice) {
  const auto meta = at::TensorOptions().device(at::kMeta);
  // PixArt-Σ-XL/2: 0.6 B parameters (the learned null caption is a buffer, not counted), at any resolution.
  for (int64_t px : {256, 512, 1024, 2048}) {
    PixArtMS sigma(PixArtConfig::preset("PixArt-Sigma-XL/2", px), meta, /*initialize=*/false);
    EXPECT_EQ(sigma->num_parameters(), 610856096) << px;
  }
  // LiT-T2I: + each block's depthwise conv (288 x 5 x 5 + 288), q/kv/proj the size of qkv/proj.
  PixArtMS lit(PixArtConfig::preset("LiT-T2I-XL/2", 1024), meta, /*initialize=*/false);
  EXPECT_EQ(lit->num_parameters(), 610856096 + 28 * (288 * 25 + 288));
  // PixArt-α-1024: the size and aspect-ratio embedders on top, a 120-token null caption.
  PixArtMS alpha(PixArtConfig::preset("PixArt-Alpha-XL/2", 1024), meta, /*initialize=*/false);
  EXPECT_EQ(alpha->num_parameters(), 610856096 + 2 * (256 * 384 + 384 + 384 * 384 + 384));
  EXPECT_EQ(state_dict(alpha).at("y_embedder.y_embedding").sizes(), at::IntArrayRef({120, 4096}));
  EXPECT_TRUE(state_dict(alpha).contains("csize_embedder.mlp.0.weight"));
}

TEST(PixArtForwardMicro, SizeAndAspectConditionsEnterTheTimestepEmbedding) {
  PixArtConfig c = test::tiny_pixart_config();
  c.hidden_size = 72;  // divisible by 3 (size embedders) and 4 (positions)
  c.micro_condition = true;
  at::manual_seed(1);
  PixArtMS model(c);
  // Random final layer and cross-attention projections (the official init zeroes them).
  for (auto& [name, p] : state_dict(model)) {
    at::NoGradGuard no_grad;
    if (name.find("final_layer.linear") != std::string::npos || name.find("cross_attn.proj") != std::string::npos)
      p.normal_(0, 0.05);
  }
  model->eval();
  at::NoGradGuard no_grad;
  const at::Tensor x = io("x_8x8"), t = io("t"), y = io("y"), mask = io("mask");
  MicroConditions micro{at::tensor({64.f, 64.f}).view({1, 2}), at::tensor({1.f})};
  const at::Tensor a = model->forward(x, t, y, mask, micro);
  micro.img_hw = at::tensor({96.f, 64.f}).view({1, 2});
  micro.aspect_ratio = at::tensor({1.5f});
  const at::Tensor b = model->forward(x, t, y, mask, micro);
  EXPECT_EQ(a.sizes(), at::IntArrayRef({2, 8, 8, 8}));
  EXPECT_GT(max_rel(a, b), 1e-4);
  EXPECT_NE(test::error_of([&] { model->forward(x, t, y, mask); }).find("image size and aspect ratio"),
            std::string::npos);
}

TEST(PixArtConfig, DiffusersAndOfficialKwargs) {
  std::ifstream in(test::fixture("t2i/pixart_tiny/diffusers/config.json"));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  PixArtConfig c = pixart_config_from_diffusers_json(text, "config.json");
  PixArtConfig expected = test::tiny_pixart_config();
  expected.model_max_length = 300;  // not recorded by diffusers
  EXPECT_EQ(c, expected);
  std::ifstream in2(test::fixture("t2i/pixart_tiny/config.json"));
  const std::string kwargs((std::istreambuf_iterator<char>(in2)), std::istreambuf_iterator<char>());
  EXPECT_EQ(pixart_config_from_official_kwargs(kwargs, "config.json"), test::tiny_pixart_config());
  EXPECT_NE(test::error_of([&] {
              pixart_config_from_official_kwargs(R"({"input_size": 8, "kv_compress_config": {"sampling": "conv"}})",
                                                 "x");
            }).find("not supported"),
            std::string::npos);
}

TEST(PixArtIo, ShardedDiffusersFolderAndMissingShard) {
  const std::string dir = sharded_copy(test::fresh_temp_dir("sharded"), 3);
  ASSERT_TRUE(is_pixart_checkpoint(dir));
  LoadedPixArt m = load_pixart(dir);
  EXPECT_EQ(m.format, "diffusers folder (3 shards)");
  at::NoGradGuard no_grad;
  EXPECT_LE(max_rel(m.model->forward(io("x_12x8"), io("t"), io("y"), io("mask")), io("out_12x8")), 1e-5);
  // A pipeline folder: transformer/ inside.
  const std::string pipeline = test::fresh_temp_dir("pipeline");
  sharded_copy(pipeline + "/transformer", 2);
  EXPECT_EQ(load_pixart(pipeline).format, "diffusers folder (2 shards)");

  fs::remove(fs::path(dir) / "diffusion_pytorch_model-00002-of-00003.safetensors");
  const std::string msg = test::error_of([&] { load_pixart(dir); });
  EXPECT_NE(msg.find("shard 'diffusion_pytorch_model-00002-of-00003.safetensors' is missing"), std::string::npos)
      << msg;
}

TEST(PixArtIo, DiffusersNamesMapBackToOfficial) {
  StateDict diffusers;
  for (auto& [name, tensor] :
       SafetensorsFile::open(test::fixture("t2i/pixart_tiny/diffusers/diffusion_pytorch_model.safetensors")).tensors())
    diffusers.insert(name, tensor);
  const StateDict official = pixart_from_diffusers(diffusers);
  const auto ref = SafetensorsFile::open(test::fixture("t2i/pixart_tiny/pixart_tiny.safetensors"));
  EXPECT_EQ(official.size(), ref.entries().size() - 2);  // no pos_embed, no y_embedding
  for (const auto& [name, tensor] : official) EXPECT_TRUE(tensor.equal(ref.tensor(name))) << name;
  diffusers.insert("transformer_blocks.0.norm1.weight", at::zeros({64}));
  EXPECT_NE(test::error_of([&] { pixart_from_diffusers(diffusers); }).find("no counterpart"), std::string::npos);
}

TEST(PixArtIo, SaveAndConvertCarryTheConfig) {
  const std::string dir = test::fresh_temp_dir("convert");
  fs::create_directories(dir);
  // .pth (config beside) -> the project's safetensors; loads with no config given.
  const PixArtConvertResult r = convert_pixart_checkpoint(test::fixture("t2i/pixart_tiny/pixart_tiny.pth"),
                                                          dir + "/tiny.safetensors", std::nullopt, "ema", "");
  EXPECT_EQ(r.config, test::tiny_pixart_config());
  EXPECT_EQ(r.dropped, std::vector<std::string>{"pos_embed"});
  EXPECT_EQ(r.tensor_count, 46u);
  LoadedPixArt m = load_pixart(dir + "/tiny.safetensors");
  EXPECT_EQ(m.config_source, "checkpoint metadata");
  at::NoGradGuard no_grad;
  EXPECT_LE(max_rel(m.model->forward(io("x_8x8"), io("t"), io("y"), io("mask")), io("out_8x8")), 1e-5);
  // A stored config wins, and a different one given is refused.
  PixArtLoadOptions options;
  options.config = test::tiny_lit_config();
  EXPECT_NE(test::error_of([&] { load_pixart(dir + "/tiny.safetensors", options); }).find("differs"),
            std::string::npos);
  // diffusers -> bf16 safetensors; save_pixart of a loaded model round-trips exactly.
  const PixArtConvertResult d = convert_pixart_checkpoint(test::fixture("t2i/pixart_tiny/diffusers"),
                                                          dir + "/d.safetensors", at::kBFloat16, "ema", "");
  EXPECT_FALSE(d.has_null_caption);
  EXPECT_EQ(SafetensorsFile::open(dir + "/d.safetensors").entry("t_block.1.weight").dtype, "BF16");
  save_pixart(dir + "/saved.safetensors", m.model);
  LoadedPixArt again = load_pixart(dir + "/saved.safetensors");
  for (const auto& [name, tensor] : state_dict(m.model))
    EXPECT_TRUE(state_dict(again.model).at(name).equal(tensor)) << name;
  // A config that does not fit the tensors is refused before writing.
  write_text(dir + "/wrong.json", test::tiny_lit_config().to_json());
  EXPECT_NE(test::error_of([&] {
              convert_pixart_checkpoint(test::fixture("t2i/pixart_tiny/pixart_tiny.pth"), dir + "/w.safetensors",
                                        std::nullopt, "ema", dir + "/wrong.json");
            }).find("lacks 'blocks.0.attn.q.weight'"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir + "/w.safetensors"));
}

TEST(PixArtIo, DdimAndDdpmDriveTheTextModelThroughAFunction) {
  LoadedPixArt m = load_pixart(test::fixture("t2i/pixart_tiny/pixart_tiny.pth"));
  TextCondition c;
  c.caption = io("y");
  c.mask = io("mask").view({2, 24});
  c.null_caption = m.model->y_embedder->y_embedding.view({1, 1, 24, 64});
  c.scale = 4.5;
  const TextConditionalFn forward = [&](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                                        const at::Tensor& mask) { return m.model->forward(x, t, y, mask); };
  const ModelFn fn = text_guided_model_fn(forward, c);
  // One call equals the guided combination of two separate forwards (all 4 eps channels, cond variance).
  at::NoGradGuard no_grad;
  const at::Tensor x = io("x_8x8"), t = io("t");
  const at::Tensor cond = m.model->forward(x, t, io("y"), c.mask);
  const at::Tensor uncond = m.model->forward(x, t, c.null_caption.expand({2, 1, 24, 64}), c.mask);
  const at::Tensor guided = at::cat(
      {uncond.narrow(1, 0, 4) + 4.5 * (cond.narrow(1, 0, 4) - uncond.narrow(1, 0, 4)), cond.narrow(1, 4, 4)}, 1);
  EXPECT_LE(max_rel(fn(x, t), guided), 1e-5);
  // forward_with_cfg's first half is the same except channel 3 (the official quirk).
  const at::Tensor cfg = m.model
                             ->forward_with_cfg(at::cat({x, x}), at::cat({t, t}),
                                                at::cat({io("y"), c.null_caption.expand({2, 1, 24, 64})}), 4.5, c.mask)
                             .narrow(0, 0, 2);
  EXPECT_LE(max_rel(cfg.narrow(1, 0, 3), guided.narrow(1, 0, 3)), 1e-5);
  EXPECT_GT(max_rel(cfg.narrow(1, 3, 1), guided.narrow(1, 3, 1)), 1e-3);

  GaussianDiffusion diffusion = GaussianDiffusion::create("5");
  const at::Tensor noise0 = at::randn({2, 4, 8, 8}, at::TensorOptions().dtype(at::kFloat));
  SeededNoise noise(7, 0, 2);
  const at::Tensor ddim = DDIMSampler().sample(fn, diffusion, noise0, noise);
  const at::Tensor ddpm = DDPMSampler().sample(fn, diffusion, noise0, noise);
  EXPECT_EQ(ddim.sizes(), noise0.sizes());
  EXPECT_TRUE(at::isfinite(ddim).all().item<bool>());
  EXPECT_TRUE(at::isfinite(ddpm).all().item<bool>());
  EXPECT_GT(max_rel(ddim, noise0), 1e-2);
}

}  // namespace
}  // namespace lit
