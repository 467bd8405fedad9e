// lit-studio's built-in models: it opens on the built-in text model with an example prompt and its learned null
// caption, the class model one button away; the worker generates with the text model off the UI thread, and the
// PNG record brings the null caption back. Behaviour only, so it holds for any model of the built-in's layout:
// the tests make a tiny one with random weights and point $LIT_BUILTIN_TEXT_MODEL at it (tests/builtin_text_fixture.h),
// so they do not need the shipped files.
#include <gtest/gtest.h>

#include "app/state/generator.h"
#include "app/state/studio_state.h"
#include "model/backbone/builtin_model.h"
#include "tests/builtin_text_fixture.h"
#include "tests/test_util.h"

namespace lit::studio {
namespace {

TEST(StudioBuiltin, TextModelWithExamplePromptAndClassModelOneCallAway) {
  const test::TinyBuiltinTextModel tiny(test::fresh_temp_dir("builtin"));
  const std::optional<BuiltinTextModel> builtin = find_builtin_text_model();
  ASSERT_TRUE(builtin.has_value());
  EXPECT_EQ(builtin->model, tiny.model);
  Settings s;
  s.vae_path = "/some/vae";
  ASSERT_TRUE(use_builtin_text_model(s));
  EXPECT_EQ(s.model_path, builtin->model);
  EXPECT_EQ(s.text_encoder_path, builtin->text_encoder);
  EXPECT_TRUE(s.vae_path.empty());
  EXPECT_TRUE(s.learned_null_caption);
  EXPECT_EQ(s.conditioning.kind, Conditioning::Kind::Prompt);
  EXPECT_EQ(s.conditioning.prompt, kBuiltinTextExamplePrompt);
  const GenerationRequest r = request_of(s, 5);
  EXPECT_EQ(r.model, builtin->model);
  EXPECT_EQ(r.text_encoder, builtin->text_encoder);
  EXPECT_TRUE(r.learned_null_caption);
  EXPECT_EQ(r.conditioning.prompt, kBuiltinTextExamplePrompt);

  ASSERT_TRUE(use_builtin_class_model(s));
  EXPECT_EQ(s.model_path, builtin_model_path());
  EXPECT_EQ(s.conditioning.kind, Conditioning::Kind::Class);
  EXPECT_EQ(request_of(s, 5).conditioning.kind, lit::Conditioning::Kind::Classes);

  // Back to the text model: the user's prompt stays.
  s.conditioning.prompt = "two sandals, yellow on the left and white on the right";
  ASSERT_TRUE(use_builtin_text_model(s));
  EXPECT_EQ(s.conditioning.prompt, "two sandals, yellow on the left and white on the right");
}

TEST(StudioBuiltin, WorkerGeneratesWithTheLearnedNullCaptionAndTheRecordRestoresIt) {
  const test::TinyBuiltinTextModel tiny(test::fresh_temp_dir("builtin"));
  ASSERT_TRUE(find_builtin_text_model().has_value());
  Settings s;
  ASSERT_TRUE(use_builtin_text_model(s));
  s.steps = 2;
  s.cfg_scale = kTextCfgScale;
  s.cfg_all_channels = true;
  s.seed = 3;
  Generator g;
  ASSERT_TRUE(g.generate(s, s.seed));
  g.wait_idle();
  ASSERT_EQ(g.progress().outcome, Outcome::Done) << g.progress().error;
  const auto info = g.model();
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->text_conditional);
  EXPECT_TRUE(info->has_learned_null_caption);
  std::vector<GeneratedImage> images = g.take_images();
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].pixels.sizes(), at::IntArrayRef({64, 64, 3}));
  EXPECT_EQ(images[0].params.prompt, kBuiltinTextExamplePrompt);
  EXPECT_EQ(images[0].params.get("Null caption").value_or(""), "learned");

  // A PNG's record brings the null caption back into settings that had the other one.
  Settings other = s;
  other.learned_null_caption = false;
  const RestoredSettings restored = settings_from_params(images[0].params, other, &*info);
  EXPECT_TRUE(restored.settings.learned_null_caption);
  EXPECT_EQ(restored.settings.conditioning.prompt, kBuiltinTextExamplePrompt);
}

}  // namespace
}  // namespace lit::studio
