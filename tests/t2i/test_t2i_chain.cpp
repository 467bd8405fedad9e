// The whole chain on the CPU: prompt -> tokenizer -> T5 (model/text) -> PixArt / LiT-T2I -> DPM-Solver, against
// the fixture's end-to-end run (tests/fixtures/t2i/e2e, prompts 14 and 5, max length 24).
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include "model/t2i/pixart_io.h"
#include "model/text/text_encoder.h"
#include "sampler/dpm_solver_vp.h"
#include "sampler/text_guidance.h"
#include "tests/t2i/t2i_test_util.h"

namespace lit {
namespace {

using test::max_rel;

at::Tensor e2e(const std::string& name) {
  return test::t2i_tensor("e2e/e2e_tiny.safetensors", name);
}

at::Tensor run_chain(PixArtMS& model) {
  text::TextEncoderOptions options;
  options.max_length = 24;
  const text::TextEncoder encoder = text::TextEncoder::load(test::fixture("t2i/t5_tiny/single"), options);
  const text::TextEmbeddings cond = encoder.encode(
      {"pixel art of a tiny robot holding a sign that says \"hello world\"", "A Red CUBE On A Blue TABLE"});
  const text::TextEmbeddings& null = encoder.null_embedding("");
  EXPECT_TRUE(cond.input_ids.equal(e2e("prompt_input_ids")));
  EXPECT_TRUE(cond.attention_mask.equal(e2e("prompt_attention_mask")));
  EXPECT_LE(max_rel(cond.embeddings.unsqueeze(1), e2e("caption_embs")), 1e-5);
  EXPECT_LE(max_rel(null.embeddings, e2e("null_caption_embs")), 1e-5);

  TextCondition c;
  c.caption = cond.embeddings.unsqueeze(1);
  c.mask = cond.attention_mask;
  c.null_caption = null.embeddings.unsqueeze(1);  // (1, 1, L, C): repeated; paired with the conditional mask
  c.scale = 4.5;
  const TextConditionalFn eps = [&](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                                    const at::Tensor& mask) { return model->forward_eps(x, t, y, mask); };
  DPMSolverOptions o;
  o.steps = 10;
  o.order = 2;
  return dpm_solver_sample(text_guided_noise_fn(eps, c), NoiseScheduleVP::linear(), e2e("noise"), o);
}

TEST(T2IChain, PromptToLatentPixArt) {
  LoadedPixArt m = load_pixart(test::fixture("t2i/pixart_tiny/pixart_tiny.pth"));
  EXPECT_LE(max_rel(run_chain(m.model), e2e("pixart_final_latent")), 1e-5);
}

TEST(T2IChain, PromptToLatentLitT2I) {
  PixArtLoadOptions options;
  options.config = test::tiny_lit_config();
  LoadedPixArt m = load_pixart(test::fixture("t2i/lit_t2i_tiny/lit_t2i_tiny.safetensors"), options);
  EXPECT_LE(max_rel(run_chain(m.model), e2e("lit_final_latent")), 1e-5);
}

}  // namespace
}  // namespace lit
