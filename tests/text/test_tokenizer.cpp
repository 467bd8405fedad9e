// The T5 tokenizer against transformers' T5Tokenizer (tests/fixtures/t2i/tokenizer): ids and masks of all 16
// fixture prompts (empty, whitespace, unicode, unknown symbols, truncation), exactly.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "model/text/tokenizer.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"

namespace lit::text {
namespace {

using test::error_of;
using test::fixture;

nlohmann::json prompts_json() {
  std::ifstream in(fixture("t2i/tokenizer/prompts.json"));
  return nlohmann::json::parse(in);
}

std::vector<std::string> fixture_prompts() {
  std::vector<std::string> out;
  const nlohmann::json info = prompts_json();
  for (const auto& p : info["prompts"]) out.push_back(p["prompt"].get<std::string>());
  return out;
}

T5Tokenizer fixture_tokenizer() {
  return T5Tokenizer::load(fixture("t2i/tokenizer/spiece.model"));
}

TEST(T5Tokenizer, VocabularyHasSentinelsAtTheEnd) {
  const T5Tokenizer tok = fixture_tokenizer();
  EXPECT_EQ(tok.piece_count(), 1000);
  EXPECT_EQ(tok.vocab_size(), 1100);  // len(tokenizer) in prompts.json
  EXPECT_EQ(tok.vocab_size(), prompts_json()["tokenizer_len"].get<int64_t>());
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.unk_id(), 2);
  EXPECT_EQ(tok.piece_to_id("<extra_id_0>"), 1099);
  EXPECT_EQ(tok.piece_to_id("<extra_id_99>"), 1000);
  EXPECT_EQ(tok.piece_to_id("<extra_id_100>"), tok.unk_id());
  EXPECT_EQ(tok.id_to_piece(1099), "<extra_id_0>");
  EXPECT_EQ(tok.id_to_piece(1), "</s>");
  EXPECT_EQ(tok.id_to_piece(96), "\xE2\x96\x81red");  // "▁red"
  EXPECT_EQ(tok.piece_to_id("\xE2\x96\x81red"), 96);
}

TEST(T5Tokenizer, IdsAndMasksOfAllFixturePromptsMatchTransformers) {
  const T5Tokenizer tok = fixture_tokenizer();
  const SafetensorsFile ref = SafetensorsFile::open(fixture("t2i/tokenizer/tokens.safetensors"));
  const nlohmann::json info = prompts_json();
  TokenizeOptions opt;
  opt.max_length = info["max_length"].get<int64_t>();
  ASSERT_EQ(opt.max_length, 24);
  const std::vector<std::string> prompts = fixture_prompts();
  ASSERT_EQ(prompts.size(), 16u);
  const TokenBatch batch = tok.batch(prompts, opt);
  const at::Tensor ids = ref.tensor("input_ids"), mask = ref.tensor("attention_mask");
  ASSERT_EQ(batch.input_ids.sizes(), ids.sizes());
  for (int64_t i = 0; i < 16; ++i) {
    EXPECT_TRUE(at::equal(batch.input_ids[i], ids[i])) << "prompt " << i << ": '" << prompts[i] << "'\n"
                                                       << batch.input_ids[i] << "\nexpected\n"
                                                       << ids[i];
    EXPECT_TRUE(at::equal(batch.attention_mask[i], mask[i])) << "prompt " << i;
    const auto& p = info["prompts"][static_cast<size_t>(i)];
    EXPECT_EQ(batch.lengths[static_cast<size_t>(i)], p["num_tokens_with_eos"].get<int64_t>()) << "prompt " << i;
    EXPECT_EQ(batch.truncated[static_cast<size_t>(i)], p["truncated"].get<bool>()) << "prompt " << i;
  }
  // The SentencePiece recipe of the fixture gives the same (its README: equal here).
  EXPECT_TRUE(at::equal(batch.input_ids, ref.tensor("input_ids_spm")));
  EXPECT_TRUE(at::equal(batch.attention_mask, ref.tensor("attention_mask_spm")));
}

TEST(T5Tokenizer, PiecesOfUnicodeAndUnknownSymbols) {
  const T5Tokenizer tok = fixture_tokenizer();
  const nlohmann::json info = prompts_json();
  for (int i : {8, 9, 12, 13, 15}) {
    const auto& p = info["prompts"][static_cast<size_t>(i)];
    EXPECT_EQ(tok.pieces(p["prompt"].get<std::string>()), p["spm_pieces_unpadded"].get<std::vector<std::string>>())
        << "prompt " << i;
  }
}

TEST(T5Tokenizer, EmptyPromptIsEosThenPadding) {
  const T5Tokenizer tok = fixture_tokenizer();
  TokenizeOptions opt;
  opt.max_length = 5;
  const TokenBatch b = tok.batch({""}, opt);
  EXPECT_TRUE(at::equal(b.input_ids, at::tensor({1, 0, 0, 0, 0}, at::kLong).view({1, 5})));
  EXPECT_TRUE(at::equal(b.attention_mask, at::tensor({1, 0, 0, 0, 0}, at::kLong).view({1, 5})));
}

TEST(T5Tokenizer, TruncationKeepsTheEos) {
  const T5Tokenizer tok = fixture_tokenizer();
  TokenizeOptions opt;
  opt.max_length = 3;
  bool truncated = false;
  EXPECT_EQ(tok.encode("a red cube", opt, &truncated), (std::vector<int64_t>{3, 96, 1}));
  EXPECT_TRUE(truncated);
  opt.max_length = 1;
  EXPECT_EQ(tok.encode("a red cube", opt), (std::vector<int64_t>{1}));
  opt.max_length = 0;
  EXPECT_NE(error_of([&] { tok.encode("a", opt); }).find("max_length"), std::string::npos);
}

TEST(T5Tokenizer, LowercaseIsOptInAndUnicodeAware) {
  const T5Tokenizer tok = fixture_tokenizer();
  TokenizeOptions lower;
  lower.lowercase = true;
  // Off by default: "A Red CUBE" keeps its capitals (fixture prompt 5).
  EXPECT_EQ(tok.encode("A Red CUBE").front(), 10);  // "▁A"
  EXPECT_EQ(tok.encode("  A Red CUBE  ", lower), tok.encode("a red cube"));
  EXPECT_EQ(T5Tokenizer::preprocess("  CAF\xC3\x89 \xC3\x9C\xC3\x9F  ", lower), "caf\xC3\xA9 \xC3\xBC\xC3\x9F");
  EXPECT_EQ(T5Tokenizer::preprocess("  As Typed ", {}), "  As Typed ");
}

TEST(T5Tokenizer, MissingOrBadModelFileIsOneLineNamingIt) {
  std::string e = error_of([] { T5Tokenizer::load("/no/such/spiece.model"); });
  EXPECT_NE(e.find("/no/such/spiece.model: missing"), std::string::npos) << e;
  e = error_of([] { T5Tokenizer::load(fixture("t2i/tokenizer/prompts.json")); });
  EXPECT_NE(e.find("prompts.json: not a SentencePiece model"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

}  // namespace
}  // namespace lit::text
