// The A1111 `parameters` text (weights/generation_params.h): the exact text other tools expect, and
// format/parse round trips on awkward values.
#include <gtest/gtest.h>

#include "common/error.h"
#include "weights/generation_params.h"

namespace lit {
namespace {

GenerationParams dit_example() {
  GenerationParams p;
  p.prompt = "class 207";
  p.set("Steps", "250");
  p.set("Sampler", "DDPM");
  p.set("CFG scale", format_number(4.0));
  p.set("Seed", "0");
  p.set("Size", "256x256");
  p.set("Model hash", "c5e6d8a9");
  p.set("Model", "DiT-XL-2-256x256");
  p.set("VAE", "sd-vae-ft-ema");
  p.set("Guidance channels", "3");
  return p;
}

TEST(GenerationParams, FormatIsTheWebUiText) {
  GenerationParams p = dit_example();
  p.negative_prompt = "blurry, low quality";
  EXPECT_EQ(format_generation_params(p),
            "class 207\n"
            "Negative prompt: blurry, low quality\n"
            "Steps: 250, Sampler: DDPM, CFG scale: 4, Seed: 0, Size: 256x256, Model hash: c5e6d8a9, "
            "Model: DiT-XL-2-256x256, VAE: sd-vae-ft-ema, Guidance channels: 3");
}

TEST(GenerationParams, ParsesTextWrittenByTheWebUi) {
  const std::string text =
      "masterpiece, a cat on a sofa,\n(detailed fur:1.2)\n"
      "Negative prompt: lowres, bad anatomy\nextra line\n"
      "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 3921, Size: 512x768, Model hash: 6ce0161689, "
      "Model: v1-5-pruned-emaonly, Lora hashes: \"add_detail: 7c6bad76eb54, more: 1\", Version: v1.6.0";
  const GenerationParams p = parse_generation_params(text);
  EXPECT_EQ(p.prompt, "masterpiece, a cat on a sofa,\n(detailed fur:1.2)");
  EXPECT_EQ(p.negative_prompt, "lowres, bad anatomy\nextra line");
  ASSERT_EQ(p.fields.size(), 9u);
  EXPECT_EQ(p.get("Sampler"), "DPM++ 2M Karras");
  EXPECT_EQ(p.get("Size"), "512x768");
  EXPECT_EQ(p.get("Lora hashes"), "add_detail: 7c6bad76eb54, more: 1");
  EXPECT_EQ(p.get("Version"), "v1.6.0");
  EXPECT_FALSE(p.get("Clip skip").has_value());
}

TEST(GenerationParams, RoundTripsAwkwardValues) {
  GenerationParams p = dit_example();
  p.prompt = "line one: with a colon\nline two, with a comma\n  indented";
  p.negative_prompt = " starts with a space\nand: goes on";
  p.set("Model", "C:\\models\\dit, v2.pt");
  p.set("Note", "say \"hi\"\nbye");
  p.set("Empty", "");
  p.set("Unicode", "chat noir — 黒猫, 🐈");
  p.set("Trailing", "space ");
  p.set("Seed", "18446744073709551615");
  const std::string text = format_generation_params(p);
  EXPECT_EQ(parse_generation_params(text), p) << text;
}

TEST(GenerationParams, RoundTripsEdgeShapes) {
  GenerationParams only_fields;
  only_fields.set("Steps", "50");
  EXPECT_EQ(parse_generation_params(format_generation_params(only_fields)), only_fields);

  GenerationParams only_prompt;
  only_prompt.prompt = "style: oil, mood: calm";  // reads like fields, but there are none
  EXPECT_EQ(parse_generation_params(format_generation_params(only_prompt)), only_prompt);

  GenerationParams negative_only = dit_example();
  negative_only.prompt = "";
  negative_only.negative_prompt = "noise";
  EXPECT_EQ(parse_generation_params(format_generation_params(negative_only)), negative_only);

  EXPECT_EQ(parse_generation_params(format_generation_params({})), GenerationParams{});
}

TEST(GenerationParams, OneLinePromptIsNotMistakenForFields) {
  // As in the web UI: a lone line needs three pairs to count as fields.
  EXPECT_EQ(parse_generation_params("style: oil").prompt, "style: oil");
  EXPECT_EQ(parse_generation_params("Steps: 5, Seed: 1, Size: 8x8").fields.size(), 3u);
}

TEST(GenerationParams, SetReplacesInPlace) {
  GenerationParams p = dit_example();
  p.set("Seed", "42");
  EXPECT_EQ(p.fields[3], (std::pair<std::string, std::string>{"Seed", "42"}));
}

TEST(GenerationParams, UnwritableKeyIsAnError) {
  GenerationParams p;
  p.set("Bad: key", "1");
  EXPECT_THROW(format_generation_params(p), Error);
}

TEST(GenerationParams, NumbersAreShortAndExact) {
  EXPECT_EQ(format_number(4.0), "4");
  EXPECT_EQ(format_number(1.5), "1.5");
  EXPECT_EQ(format_number(0.18215), "0.18215");
  EXPECT_EQ(format_number(0.1 + 0.2), "0.30000000000000004");
}

}  // namespace
}  // namespace lit
