// use_builtin_text_model (pipeline/request.h): which requests get the built-in text model, and what of theirs
// they keep; nothing is loaded. The built-in text model is a tiny one made here ($LIT_BUILTIN_TEXT_MODEL), not the
// shipped file; where it is missing, the request is refused with the places looked in.
#include <gtest/gtest.h>

#include <filesystem>

#include "model/backbone/builtin_model.h"
#include "model/t2i/pixart_io.h"
#include "model/text/t5_config.h"
#include "pipeline/request.h"
#include "tests/builtin_text_fixture.h"

namespace lit {
namespace {

GenerationRequest prompt_request() {
  GenerationRequest r;
  r.conditioning.kind = Conditioning::Kind::Prompt;
  r.conditioning.prompt = "a red sneaker on the left";
  return r;
}

TEST(BuiltinTextRequest, APromptWithoutModelGetsTheBuiltinTextModelOnly) {
  const test::TinyBuiltinTextModel tiny(test::fresh_temp_dir("builtin"));
  const std::optional<BuiltinTextModel> builtin = find_builtin_text_model();
  ASSERT_TRUE(builtin.has_value());
  EXPECT_EQ(builtin->model, tiny.model);
  EXPECT_EQ(builtin->text_encoder, tiny.text_encoder);

  GenerationRequest r = prompt_request();
  EXPECT_TRUE(use_builtin_text_model(r, /*null_caption_chosen=*/false));
  EXPECT_EQ(r.model, builtin->model);
  EXPECT_EQ(r.text_encoder, builtin->text_encoder);
  EXPECT_TRUE(r.learned_null_caption);

  // The user's T5 folder and null caption stay; the diffusers convention means T5's null caption.
  GenerationRequest own = prompt_request();
  own.text_encoder = "/my/t5";
  EXPECT_TRUE(use_builtin_text_model(own, /*null_caption_chosen=*/true));
  EXPECT_EQ(own.model, builtin->model);
  EXPECT_EQ(own.text_encoder, "/my/t5");
  EXPECT_FALSE(own.learned_null_caption);
  GenerationRequest diffusers = prompt_request();
  diffusers.guidance_convention = GuidanceConvention::Diffusers;
  EXPECT_TRUE(use_builtin_text_model(diffusers, false));
  EXPECT_FALSE(diffusers.learned_null_caption);

  // A named model, even the built-in file, and requests without a prompt are left as they are.
  GenerationRequest named = prompt_request();
  named.model = builtin->model;
  const GenerationRequest before = named;
  EXPECT_FALSE(use_builtin_text_model(named, false));
  EXPECT_EQ(named, before);
  for (const Conditioning::Kind kind : {Conditioning::Kind::Unconditional, Conditioning::Kind::AllClasses}) {
    GenerationRequest c;
    c.conditioning.kind = kind;
    EXPECT_FALSE(use_builtin_text_model(c, false));
    EXPECT_TRUE(c.model.empty());
    EXPECT_TRUE(c.text_encoder.empty());
    EXPECT_FALSE(c.learned_null_caption);
  }
}

// The made model is what the lookup takes for the built-in text model, with what the defaults rely on: its T5
// folder beside it, a pixel-space LiT-T2I config in its metadata, a learned null caption as wide as T5's features.
// (The shipped file's own checks -- 64x64, size for git -- come with it.)
TEST(BuiltinTextRequest, TheEnvironmentNamesAModelOfTheBuiltinLayout) {
  const test::TinyBuiltinTextModel tiny(test::fresh_temp_dir("builtin"));
  const std::optional<BuiltinTextModel> builtin = find_builtin_text_model();
  ASSERT_TRUE(builtin.has_value());
  EXPECT_TRUE(is_builtin_text_model(tiny.model));
  const std::filesystem::path dir = std::filesystem::path(tiny.model).parent_path();
  EXPECT_TRUE(is_builtin_text_model((dir / ".." / dir.filename() / "lit-t2i.safetensors").string()));  // same file
  EXPECT_FALSE(is_builtin_text_model(builtin->text_encoder + "/model.safetensors"));
  EXPECT_FALSE(is_builtin_text_model(""));
  EXPECT_TRUE(std::filesystem::is_regular_file(builtin->text_encoder + "/spiece.model"));
  const LoadedPixArt m = load_pixart(builtin->model);
  EXPECT_EQ(m.config_source, "checkpoint metadata");
  EXPECT_EQ(m.config.in_channels, 3);  // RGB pixels, no VAE
  EXPECT_TRUE(m.config.is_linear());   // LiT-T2I
  EXPECT_TRUE(m.has_null_caption);
  EXPECT_EQ(text::read_t5_config(builtin->text_encoder + "/config.json").d_model, m.config.caption_channels);
}

// $LIT_BUILTIN_TEXT_MODEL is looked at first: a checkpoint there without its T5 folder is not the built-in text
// model, and a prompt request without --model is refused saying what is missing.
TEST(BuiltinTextRequest, ACheckpointWithoutItsT5FolderIsRefused) {
  const std::string dir = test::fresh_temp_dir("no_t5");
  std::string model;
  {
    const test::TinyBuiltinTextModel tiny(dir);
    model = tiny.model;
  }
  std::filesystem::remove_all(dir + "/t5");
  const test::ScopedEnv env("LIT_BUILTIN_TEXT_MODEL", model);
  ASSERT_EQ(builtin_text_model_candidates().front(), model);
  EXPECT_FALSE(find_builtin_text_model().has_value());
  EXPECT_FALSE(is_builtin_text_model(model));
  GenerationRequest r = prompt_request();
  const std::string error = test::error_of([&] { use_builtin_text_model(r, false); });
  EXPECT_EQ(error, "the built-in text-to-image model " + model + " has no T5 folder beside it (" + dir +
                       "/t5/config.json is missing)");
  EXPECT_TRUE(r.model.empty());
}

// A $LIT_BUILTIN_TEXT_MODEL naming no file is passed over for the installed tree and the source tree; where
// neither holds the model (the shipped files are not in this checkout), the error names all three places.
TEST(BuiltinTextRequest, AMissingEnvironmentFileFallsThroughToTheOtherPlaces) {
  const std::string missing = test::temp_path("nowhere/lit-t2i.safetensors");
  const test::ScopedEnv env("LIT_BUILTIN_TEXT_MODEL", missing);
  const std::vector<std::string> candidates = builtin_text_model_candidates();
  ASSERT_EQ(candidates.size(), 3u);
  EXPECT_EQ(candidates[0], missing);
  const std::optional<BuiltinTextModel> found = find_builtin_text_model();
  std::error_code ec;
  if (std::filesystem::is_regular_file(candidates[1], ec) || std::filesystem::is_regular_file(candidates[2], ec)) {
    ASSERT_TRUE(found.has_value()) << "a checkpoint in " << candidates[1] << " or " << candidates[2]
                                   << " without its t5/ folder";
    EXPECT_NE(found->model, missing);
    return;
  }
  EXPECT_FALSE(found.has_value());
  GenerationRequest r = prompt_request();
  const std::string error = test::error_of([&] { use_builtin_text_model(r, false); });
  EXPECT_EQ(error, "the built-in text-to-image model is not installed (looked in " + candidates[0] + ", " +
                       candidates[1] + ", " + candidates[2] + "); pass --model FILE --text-encoder DIR");
  EXPECT_TRUE(r.model.empty());
}

}  // namespace
}  // namespace lit
