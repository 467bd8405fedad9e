// `lit encode-text`, `lit inspect` on a T5 folder and `lit bench text-encoder`, as a user runs them.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "weights/safetensors.h"

namespace lit {
namespace {

namespace fs = std::filesystem;
using test::fixture;
using test::run_command;
using test::temp_path;

const std::string kLit = LIT_CLI_PATH;

TEST(CliText, EncodeTextWritesTheFixturesEmbeddingsMaskAndIds) {
  const std::string out = temp_path("emb.safetensors");
  fs::remove(out);
  // Prompts 1 ("a red cube") and 10 (long: truncated at 24) of the fixture.
  const std::string long_prompt =
      "a woman wearing a blue dress and white shoes, standing on the left of a small wooden table in a garden at "
      "sunset, digital art";
  const auto r = run_command(kLit + " encode-text --text-encoder " + fixture("t2i/t5_tiny/sharded") +
                             " 'a red cube' '" + long_prompt + "' --max-length 24 -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("prompt 0      4 tokens: \xE2\x96\x81"
                          "a \xE2\x96\x81red \xE2\x96\x81"
                          "cube </s>"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("prompt 1      24 tokens (truncated)"), std::string::npos) << r.output;
  const SafetensorsFile file = SafetensorsFile::open(out);
  const SafetensorsFile ref = SafetensorsFile::open(fixture("t2i/t5_tiny/t5_outputs.safetensors"));
  const at::Tensor rows = at::tensor({1, 10}, at::kLong);
  EXPECT_TRUE(at::equal(file.tensor("input_ids"), ref.tensor("input_ids_L24").index_select(0, rows)));
  EXPECT_TRUE(at::equal(file.tensor("attention_mask"), ref.tensor("attention_mask_L24").index_select(0, rows)));
  EXPECT_LE(test::rel_error(file.tensor("embeddings"), ref.tensor("last_hidden_state_L24").index_select(0, rows)),
            1e-5);
  EXPECT_EQ(nlohmann::json::parse(file.metadata().at("prompts"))[0], "a red cube");
}

TEST(CliText, EncodeTextFp16SaysWhatItComputesIn) {
  const std::string out = temp_path("emb.safetensors");
  const auto r = run_command(kLit + " encode-text --text-encoder " + fixture("t2i/t5_tiny/single") +
                             " 'a red cube' --max-length 8 --dtype fp16 -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("lit: note: T5 overflows in fp16"), std::string::npos) << r.output;
  EXPECT_EQ(SafetensorsFile::open(out).metadata().at("dtype"), "F32");
}

TEST(CliText, EncodeTextBadFolderIsOneLine) {
  const std::string dir = test::fresh_temp_dir("t5");
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(fixture(std::string("t2i/t5_tiny/single/") + f), dir + "/" + f);
  const auto r = run_command(kLit + " encode-text --text-encoder " + dir + " 'a red cube' -o " + temp_path("x.st"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("lit: error: " + dir + "/spiece.model: missing"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << "expected exactly one line: " << r.output;
  EXPECT_FALSE(fs::exists(temp_path("x.st")));
}

TEST(CliText, InspectT5Folder) {
  const auto r = run_command(kLit + " inspect " + fixture("t2i/t5_tiny/sharded"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Hugging Face T5 encoder (sharded: 3 shards"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("d_model 64, 3 layers, 4 heads x 16, d_ff 160, gated-gelu"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("parameters  212,288"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1100 ids (1000 SentencePiece pieces + 100 sentinels"), std::string::npos) << r.output;
}

TEST(CliText, BenchTextEncoderOnTheCpu) {
  const auto r = run_command(kLit + " bench text-encoder --config " + fixture("t2i/t5_tiny/single/config.json") +
                             " --device cpu --dtype fp32 --batch-size 2 --max-length 24 --tokens 10 --repeats 2"
                             " --warmup 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ms/prompt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("lit           2       10        24"), std::string::npos) << r.output;
  const auto bad = run_command(kLit + " bench text-encoder --device cpu --tokens 400");
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("--tokens"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace lit
