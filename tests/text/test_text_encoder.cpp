// TextEncoder: prompts -> T5 embeddings + mask, against the fixture's last_hidden_state; the longest-prompt
// mode; the cached null prompt; fp16 asked for.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "model/text/text_encoder.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"

namespace lit::text {
namespace {

using test::fixture;

std::vector<std::string> fixture_prompts() {
  std::ifstream in(fixture("t2i/tokenizer/prompts.json"));
  const nlohmann::json info = nlohmann::json::parse(in);
  std::vector<std::string> out;
  for (const auto& p : info["prompts"]) out.push_back(p["prompt"].get<std::string>());
  return out;
}

TextEncoder tiny(int64_t max_length = 24, at::ScalarType dtype = at::kFloat) {
  TextEncoderOptions o;
  o.max_length = max_length;
  o.dtype = dtype;
  return TextEncoder::load(fixture("t2i/t5_tiny/single"), o);
}

TEST(TextEncoder, PromptsToTheFixturesEmbeddings) {
  const TextEncoder enc = tiny();
  const SafetensorsFile ref = SafetensorsFile::open(fixture("t2i/t5_tiny/t5_outputs.safetensors"));
  const TextEmbeddings e = enc.encode(fixture_prompts());
  EXPECT_TRUE(at::equal(e.input_ids, ref.tensor("input_ids_L24")));
  EXPECT_TRUE(at::equal(e.attention_mask, ref.tensor("attention_mask_L24")));
  EXPECT_EQ(e.embeddings.scalar_type(), at::kFloat);
  EXPECT_LE(test::rel_error(e.embeddings, ref.tensor("last_hidden_state_L24")), 1e-5);
  EXPECT_TRUE(enc.notice().empty());
}

TEST(TextEncoder, EndToEndFixturesCaptions) {
  // The e2e run's prompts 14 and 5, as the official script encodes them.
  const TextEncoder enc = tiny();
  const std::vector<std::string> prompts = fixture_prompts();
  const TextEmbeddings e = enc.encode({prompts[14], prompts[5]});
  const SafetensorsFile e2e = SafetensorsFile::open(fixture("t2i/e2e/e2e_tiny.safetensors"));
  EXPECT_TRUE(at::equal(e.input_ids, e2e.tensor("prompt_input_ids")));
  EXPECT_TRUE(at::equal(e.attention_mask, e2e.tensor("prompt_attention_mask")));
  EXPECT_LE(test::rel_error(e.embeddings, e2e.tensor("caption_embs").squeeze(1)), 1e-5);
}

TEST(TextEncoder, LongestPromptModeComputesOnlyTheRealTokens) {
  const TextEncoder enc = tiny();
  const std::vector<std::string> prompts = {"a red cube", "A Red CUBE On A Blue TABLE"};  // 4 and 9 tokens
  const TextEmbeddings full = enc.encode(prompts, EncodeLength::kFull);
  const TextEmbeddings part = enc.encode(prompts, EncodeLength::kLongestPrompt);
  EXPECT_TRUE(at::equal(full.attention_mask, part.attention_mask));
  EXPECT_TRUE(at::equal(full.input_ids, part.input_ids));
  ASSERT_EQ(part.embeddings.sizes(), full.embeddings.sizes());
  // Real tokens: the same numbers (the padded keys never reached them); rows from the longest length on: zeros.
  for (int64_t b = 0; b < 2; ++b) {
    const int64_t n = part.lengths[static_cast<size_t>(b)];
    EXPECT_LE(test::rel_error(part.embeddings[b].narrow(0, 0, n), full.embeddings[b].narrow(0, 0, n)), 1e-6);
  }
  EXPECT_TRUE(at::equal(part.embeddings.narrow(1, 9, 15), at::zeros({2, 15, 64})));
  EXPECT_GT(full.embeddings.narrow(1, 9, 15).abs().max().item<float>(), 0.1f);  // full length: real pad rows
}

TEST(TextEncoder, NullPromptIsFullLengthAndCached) {
  const TextEncoder enc = tiny();
  const TextEmbeddings& a = enc.null_embedding();
  const TextEmbeddings& b = enc.null_embedding();
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(a.lengths, std::vector<int64_t>{1});
  // The official PixArt-Σ null caption: T5("")'s 24 rows, pad rows included (e2e fixture).
  const SafetensorsFile e2e = SafetensorsFile::open(fixture("t2i/e2e/e2e_tiny.safetensors"));
  EXPECT_TRUE(at::equal(a.input_ids, e2e.tensor("null_input_ids")));
  EXPECT_TRUE(at::equal(a.attention_mask, e2e.tensor("null_attention_mask")));
  EXPECT_LE(test::rel_error(a.embeddings, e2e.tensor("null_caption_embs")), 1e-5);
  EXPECT_GT(a.embeddings[0][5].abs().max().item<float>(), 0.1f);
  const TextEmbeddings& neg = enc.null_embedding("blurry");
  EXPECT_NE(&neg, &a);
  EXPECT_EQ(neg.lengths[0], static_cast<int64_t>(enc.tokenizer().encode("blurry").size()));
}

TEST(TextEncoder, Fp16ComputesInFp32OnTheCpuAndSaysSo) {
  const TextEncoder enc = tiny(24, at::kHalf);
  EXPECT_EQ(enc.compute_dtype(), at::kFloat);
  EXPECT_NE(enc.notice().find("T5 overflows in fp16"), std::string::npos) << enc.notice();
  std::string notice;
  EXPECT_EQ(t5_compute_dtype(at::kHalf, at::Device("cuda"), &notice), at::kBFloat16);
  EXPECT_NE(notice.find("bf16"), std::string::npos) << notice;
}

TEST(TextEncoder, LowercaseOption) {
  TextEncoderOptions o;
  o.max_length = 24;
  o.lowercase = true;
  const TextEncoder lower = TextEncoder::load(fixture("t2i/t5_tiny/single"), o);
  const TextEncoder plain = tiny();
  EXPECT_TRUE(at::equal(lower.encode({"A RED Cube"}).input_ids, plain.encode({"a red cube"}).input_ids));
  EXPECT_FALSE(at::equal(plain.encode({"A RED Cube"}).input_ids, plain.encode({"a red cube"}).input_ids));
}

}  // namespace
}  // namespace lit::text
