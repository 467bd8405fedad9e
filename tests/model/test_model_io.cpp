// Building models from checkpoints: strict loads, config resolution, weight inheritance LiT <- DiT, saving.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "model/backbone/model_io.h"
#include "tests/model/model_test_util.h"
#include "weights/checkpoint.h"
#include "common/error.h"

namespace lit {
namespace {

// Expects a lit::Error whose one-line message contains every fragment.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "no lit::Error";
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const auto& fragment : fragments) EXPECT_NE(message.find(fragment), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

void expect_same_tensors(const StateDict& a, const StateDict& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : b) {
    ASSERT_TRUE(a.contains(name)) << name;
    EXPECT_TRUE(at::equal(a.at(name).to(tensor.scalar_type()), tensor)) << name;
  }
}

// ---------------------------------------------------------------------------------------------------------
// State dicts and strict loading
// ---------------------------------------------------------------------------------------------------------
TEST(ModelIO, StateDictNamesAreTheReleasedOnes) {
  DiT model(test::tiny_dit_config());
  const StateDict sd = state_dict(model);
  EXPECT_EQ(sd.items().front().first, "pos_embed");
  EXPECT_EQ(sd.items().back().first, "final_layer.adaLN_modulation.1.bias");
  for (const char* name :
       {"x_embedder.proj.weight", "t_embedder.mlp.0.weight", "t_embedder.mlp.2.bias",
        "y_embedder.embedding_table.weight", "blocks.1.attn.qkv.weight", "blocks.0.attn.proj.bias",
        "blocks.0.mlp.fc2.weight", "blocks.1.adaLN_modulation.1.weight", "final_layer.linear.weight"})
    EXPECT_TRUE(sd.contains(name)) << name;
  // The fp16 fixture holds exactly these names and shapes.
  const StateDict fp16 = test::read_safetensors(test::fixture("dit/dit_tiny_fp16.safetensors"));
  ASSERT_EQ(fp16.size(), sd.size());
  for (const auto& [name, tensor] : fp16) EXPECT_EQ(sd.at(name).sizes(), tensor.sizes()) << name;
  // state_dict shares the model's storage.
  EXPECT_EQ(sd.at("pos_embed").data_ptr(), model->pos_embed.data_ptr());
}

TEST(ModelIO, StrictLoadConvertsDtypesAndNamesMismatches) {
  const StateDict fp16 = test::read_safetensors(test::fixture("dit/dit_tiny_fp16.safetensors"));
  DiT model(test::tiny_dit_config(), at::kFloat, /*initialize=*/false);
  const LoadReport report = load_state_dict(model, fp16);
  EXPECT_EQ(report.loaded.size(), fp16.size());
  EXPECT_EQ(report.loaded_params, model->num_parameters());
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty() && report.initialised.empty());
  EXPECT_EQ(model->blocks[0]->attn->named_parameters()["qkv.weight"].scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(model->blocks[0]->mlp->fc1->weight, fp16.at("blocks.0.mlp.fc1.weight").to(at::kFloat)));

  // Another width: the first tensor that differs, with both shapes.
  ModelConfig narrow = test::tiny_dit_config();
  narrow.hidden_size = 32;
  DiT small(narrow, at::kFloat, false);
  expect_error([&] { load_state_dict(small, fp16); },
               {"'pos_embed'", "[1, 16, 64] in the checkpoint", "expects [1, 16, 32]"});

  // Another depth: blocks.2 missing, or blocks.1 unexpected.
  ModelConfig deeper = test::tiny_dit_config();
  deeper.depth = 3;
  DiT deep(deeper, at::kFloat, false);
  expect_error([&] { load_state_dict(deep, fp16); }, {"lacks 10 of", "'blocks.2.attn.qkv.weight'", "[192, 64]"});
  ModelConfig shallower = test::tiny_dit_config();
  shallower.depth = 1;
  DiT shallow(shallower, at::kFloat, false);
  expect_error([&] { load_state_dict(shallow, fp16); },
               {"has 10 tensors that", "'blocks.1.adaLN_modulation.1.bias'", "[384]"});

  // No null class: the label table has one row fewer.
  ModelConfig no_null = test::tiny_dit_config();
  no_null.class_dropout_prob = 0;
  DiT unguided(no_null, at::kFloat, false);
  expect_error([&] { load_state_dict(unguided, fp16); },
               {"'y_embedder.embedding_table.weight'", "[11, 64] in the checkpoint", "expects [10, 64]"});

  // A DiT checkpoint loaded as a LiT points at inheritance.
  DiT lit(test::tiny_lit_config(), at::kFloat, false);
  expect_error([&] { load_state_dict(lit, fp16); }, {"'blocks.0.attn.q.weight'", "weight inheritance"});

  // Non-strict: the report lists what did not fit (q, kv, dwc; qkv), the model keeps the rest (proj included).
  const LoadReport partial = load_state_dict(lit, fp16, /*strict=*/false);
  EXPECT_EQ(partial.missing.size(), 12u);
  EXPECT_EQ(partial.unexpected.size(), 4u);
  EXPECT_EQ(partial.loaded.size(), 28u);
  EXPECT_NE(partial.to_string().find("12 model tensors not in the checkpoint"), std::string::npos)
      << partial.to_string();

  // A failed load changes nothing.
  DiT fresh(test::tiny_dit_config());
  const at::Tensor before = fresh->blocks[0]->mlp->fc1->weight.clone();
  StateDict broken;
  for (const auto& [name, tensor] : fp16)
    broken.insert(name, name == "final_layer.linear.bias" ? at::zeros({3}) : tensor);
  expect_error([&] { load_state_dict(fresh, broken); }, {"'final_layer.linear.bias'", "[3]", "[32]"});
  EXPECT_TRUE(at::equal(fresh->blocks[0]->mlp->fc1->weight, before));
}

// ---------------------------------------------------------------------------------------------------------
// load_model: formats and config resolution
// ---------------------------------------------------------------------------------------------------------
TEST(ModelIO, LoadsTheTinyDiTInEveryFormat) {
  const StateDict io = test::read_safetensors(test::fixture("dit/dit_tiny_io.safetensors"));
  // dit/config.json lies beside the files: it is the config.
  LoadedModel zip = load_model(test::fixture("dit/dit_tiny.pt"));
  EXPECT_EQ(zip.config, test::tiny_dit_config());
  EXPECT_NE(zip.config_source.find("config.json"), std::string::npos) << zip.config_source;
  EXPECT_EQ(zip.format, CheckpointFormat::TorchZip);
  EXPECT_FALSE(zip.model->is_training());
  EXPECT_EQ(zip.report.loaded.size(), 32u);

  LoadedModel legacy = load_model(test::fixture("dit/dit_tiny_legacy.pt"), {test::tiny_dit_config()});
  EXPECT_EQ(legacy.config_source, "given");
  EXPECT_EQ(legacy.format, CheckpointFormat::TorchLegacy);
  expect_same_tensors(state_dict(legacy.model), state_dict(zip.model));

  // A training checkpoint: "ema" by default (its weights are the model's halved), "model" on request.
  LoadedModel ema = load_model(test::fixture("dit/dit_tiny_train_ckpt.pt"), {test::tiny_dit_config()});
  EXPECT_EQ(ema.weights_key, "ema");
  EXPECT_TRUE(at::allclose(ema.model->blocks[1]->mlp->fc2->weight, zip.model->blocks[1]->mlp->fc2->weight * 0.5));
  ModelLoadOptions model_weights{test::tiny_dit_config()};
  model_weights.use_weights = "model";
  LoadedModel raw = load_model(test::fixture("dit/dit_tiny_train_ckpt.pt"), model_weights);
  EXPECT_EQ(raw.weights_key, "model");
  expect_same_tensors(state_dict(raw.model), state_dict(zip.model));

  // float16 safetensors into a float32 model, and a float32 file into a bfloat16 model.
  LoadedModel half = load_model(test::fixture("dit/dit_tiny_fp16.safetensors"));
  EXPECT_EQ(half.model->dtype(), at::kFloat);
  EXPECT_EQ(half.format, CheckpointFormat::Safetensors);
  ModelLoadOptions bf16{test::tiny_dit_config()};
  bf16.dtype = at::kBFloat16;
  LoadedModel b = load_model(test::fixture("dit/dit_tiny.pt"), bf16);
  EXPECT_EQ(b.model->blocks[0]->attn->named_parameters()["qkv.weight"].scalar_type(), at::kBFloat16);
}

TEST(ModelIO, ConfigResolution) {
  // lit/config.json is the fixture's description, not a model config: the error names it; a given config wins.
  expect_error([] { load_model(test::fixture("lit/lit_tiny.pt")); }, {"unknown key 'lit_heads'", "lit/config.json"});
  LoadedModel lit = load_model(test::fixture("lit/lit_tiny.pt"), {test::tiny_lit_config()});
  EXPECT_EQ(lit.config_source, "given");

  // Saved by us: the config travels in the metadata.
  const std::string path = test::temp_path("lit.safetensors");
  save_model(path, lit.model);
  const SafetensorsFile file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.metadata().count("config"));
  EXPECT_EQ(ModelConfig::from_json(file.metadata().at("config")), test::tiny_lit_config());
  LoadedModel again = load_model(path);
  EXPECT_EQ(again.config_source, "checkpoint metadata");
  EXPECT_EQ(again.config, test::tiny_lit_config());
  expect_same_tensors(state_dict(again.model), state_dict(lit.model));
  // A given config must agree with the stored one.
  expect_error([&] { load_model(path, {test::tiny_dit_config()}); }, {"differs from the one stored"});

  // Neither metadata nor config.json: inferred from the shapes (a LiT's heads are in its dwc).
  const std::string bare = test::temp_path("bare.safetensors");
  write_safetensors(bare, state_dict(lit.model).items());
  LoadedModel inferred = load_model(bare);
  EXPECT_EQ(inferred.config_source, "inferred from tensor shapes");
  EXPECT_EQ(inferred.config, test::tiny_lit_config());
  // A softmax model of an unreleased width cannot be inferred.
  const std::string bare_dit = test::temp_path("bare_dit.safetensors");
  write_safetensors(bare_dit, state_dict(load_model(test::fixture("dit/dit_tiny.pt")).model).items());
  expect_error([&] { load_model(bare_dit); }, {"width 64", "--config"});
  // Saving in another dtype.
  const std::string half = test::temp_path("half.safetensors");
  save_model(half, lit.model, at::kHalf, {{"note", "tiny"}});
  const SafetensorsFile hf = SafetensorsFile::open(half);
  EXPECT_EQ(hf.entry("blocks.0.attn.q.weight").dtype, "F16");
  EXPECT_EQ(hf.metadata().at("note"), "tiny");
  for (const auto& p : {path, bare, bare_dit, half}) std::remove(p.c_str());
}

// ---------------------------------------------------------------------------------------------------------
// Weight inheritance
// ---------------------------------------------------------------------------------------------------------
TEST(ModelIO, InheritanceFromTheTinyDiTGivesTheFixtureLiT) {
  LoadedModel m = load_lit_from_dit(test::fixture("dit/dit_tiny.pt"), test::tiny_lit_config());
  const LoadReport& r = m.report;
  EXPECT_EQ(r.loaded.size(), 24u);  // 32 DiT tensors less 4 attention tensors per block
  EXPECT_EQ(r.initialised.size(), 16u);
  EXPECT_EQ(r.skipped.size(), 8u);
  EXPECT_TRUE(r.unexpected.empty() && r.missing.empty());
  EXPECT_EQ(r.initialised_params, 2 * (64 * 64 + 64 + 128 * 64 + 128 + 32 * 25 + 32 + 64 * 64 + 64));
  EXPECT_EQ(r.skipped_params, 2 * (192 * 64 + 192 + 64 * 64 + 64));
  EXPECT_EQ(r.loaded_params + r.initialised_params, m.model->num_parameters());
  const std::string text = r.to_string();
  EXPECT_NE(text.find("loaded 24 tensors"), std::string::npos) << text;
  EXPECT_NE(text.find("initialised 16 tensors"), std::string::npos) << text;
  EXPECT_NE(text.find("skipped 8 checkpoint tensors"), std::string::npos) << text;

  // The fresh attention: Xavier-uniform linears with zero biases, default-initialised dwc.
  auto* attn = dynamic_cast<dit::LinearAttention*>(m.model->blocks[1]->attn.get());
  ASSERT_NE(attn, nullptr);
  EXPECT_EQ(attn->q->bias.abs().max().item<float>(), 0.0f);
  EXPECT_LE(attn->proj->weight.abs().max().item<float>(), std::sqrt(6.0 / 128));
  EXPECT_GT(attn->dwc->bias.abs().max().item<float>(), 0.0f);

  // + the fixture's attention weights = lit_tiny.pt, exactly.
  const LoadReport attn_report =
      load_state_dict(m.model, test::read_safetensors(test::fixture("lit/lit_tiny_attn.safetensors")), false);
  EXPECT_EQ(attn_report.loaded.size(), 16u);
  expect_same_tensors(state_dict(m.model), load_checkpoint(test::fixture("lit/lit_tiny.pt")).tensors);
}

TEST(ModelIO, InheritanceRefusesMismatches) {
  const StateDict dit = load_checkpoint(test::fixture("dit/dit_tiny.pt")).tensors;
  // Another depth.
  ModelConfig deeper = test::tiny_lit_config();
  deeper.depth = 3;
  DiT deep(deeper, at::kFloat, false);
  expect_error([&] { inherit_from_dit(deep, dit); }, {"lacks 'blocks.2.mlp.fc1.weight'", "[256, 64]"});
  ModelConfig shallower = test::tiny_lit_config();
  shallower.depth = 1;
  DiT shallow(shallower, at::kFloat, false);
  expect_error([&] { inherit_from_dit(shallow, dit); }, {"'blocks.1.mlp.fc1.weight'", "same depth and width"});
  // A softmax target is not a LiT.
  expect_error([] { load_lit_from_dit(test::fixture("dit/dit_tiny.pt"), test::tiny_dit_config()); },
               {"needs \"attention\": \"linear\""});

  // A DiT-XL/2 checkpoint into a LiT-B/2: the first tensor of another shape, both shapes. (The checkpoint is
  // meta tensors, shapes only; the LiT-B/2 is allocated but never written.)
  StateDict xl;
  for (const auto& [name, tensor] : state_dict(DiT(ModelConfig::preset("DiT-XL/2"), at::kMeta)))
    xl.insert(name, tensor);
  DiT lit_b(ModelConfig::preset("LiT-B/2"), at::kFloat, /*initialize=*/false);
  expect_error([&] { inherit_from_dit(lit_b, xl); },
               {"'pos_embed'", "[1, 256, 1152] in the checkpoint", "the LiT-B/2 expects [1, 256, 768]"});
  expect_error([&] { load_lit_from_dit(test::fixture("dit/dit_tiny.pt"), ModelConfig::preset("LiT-S/2")); },
               {"'pos_embed'", "[1, 16, 64]", "[1, 256, 384]", "dit_tiny.pt"});
}

TEST(ModelIO, LitConfigFromDiT) {
  EXPECT_EQ(lit_config_from_dit(ModelConfig::preset("DiT-XL/2", 512)), ModelConfig::preset("LiT-XL/2", 512));
  EXPECT_EQ(lit_config_from_dit(ModelConfig::preset("DiT-L/4")), ModelConfig::preset("LiT-L/4"));
  EXPECT_EQ(lit_config_from_dit(ModelConfig::preset("DiT-B/2")), ModelConfig::preset("LiT-B/2"));
  EXPECT_EQ(lit_config_from_dit(ModelConfig::preset("DiT-S/8")), ModelConfig::preset("LiT-S/8"));
  EXPECT_EQ(lit_config_from_dit(test::tiny_dit_config(), 2), test::tiny_lit_config());
  EXPECT_THROW(lit_config_from_dit(test::tiny_dit_config(), 3), Error);
}

}  // namespace
}  // namespace lit
