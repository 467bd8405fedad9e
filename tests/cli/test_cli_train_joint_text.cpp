// A T5 text encoder trained jointly with a text-to-image model, as a user runs it: `lit extract-latents
// --tokenizer` on a caption folder, `lit train --text-encoder-config --tokenizer`, resume, `lit generate` from
// the checkpoint's ema.safetensors and text_encoder_ema/, a new run going on from a run's fp16 weights and T5
// folder (--model, --text-encoder-init), and every mismatch as one line.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/text/t5_init.h"
#include "model/text/t5_loader.h"
#include "model/text/tokenizer.h"
#include "tests/builtin_text_fixture.h"
#include "tests/test_util.h"
#include "tools/cli/train_text.h"
#include "weights/image_io.h"
#include "weights/latent_file.h"
#include "weights/safetensors.h"

namespace lit {
namespace {

namespace fs = std::filesystem;
using test::fixture;
using test::run_command;

const std::string kLit = LIT_CLI_PATH;
const std::string kSpiece = fixture("t2i/t5_tiny/single/spiece.model");
const char* kCaptions[] = {"a red cube", "a blue ball on a table", "a green cone", "a yellow star in the sky"};

std::string caption_folder(const std::string& dir) {
  fs::create_directories(dir);
  at::manual_seed(3);
  for (int i = 0; i < 4; ++i) {
    const std::string stem = dir + "/img" + std::to_string(i);
    write_image(stem + ".png", at::randint(0, 256, {10, 12, 3}, at::kLong).to(at::kByte));
    std::ofstream(stem + ".txt") << kCaptions[i] << "\n";
  }
  return dir;
}

const std::string kVae = fixture("vae/tiny_sd_vae");  // 4 latent channels, x8

const char* kPixArtConfig = R"({"model": "PixArtMS", "input_size": 8, "patch_size": 2, "in_channels": 3,
  "hidden_size": 64, "depth": 2, "num_heads": 4, "caption_channels": 64, "model_max_length": 24,
  "pe_interpolation": 1.0})";
// The same on the tiny VAE's 8x8x4 latents of 64x64 images.
const char* kLatentPixArtConfig = R"({"model": "PixArtMS", "input_size": 8, "patch_size": 2, "in_channels": 4,
  "hidden_size": 64, "depth": 2, "num_heads": 4, "caption_channels": 64, "model_max_length": 24,
  "pe_interpolation": 1.0})";

// A 2-layer encoder of width 64; no vocab_size: the tokenizer's ids.
std::string t5_config(int64_t d_model) {
  return R"({"d_model": )" + std::to_string(d_model) +
         R"(, "d_kv": 16, "num_heads": 4, "d_ff": 128, "num_layers": 2, "feed_forward_proj": "gated-gelu"})";
}

std::string write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

bool one_line(const std::string& output) {
  return !output.empty() && output.find('\n') == output.size() - 1;
}

TEST(CliTrainJointText, ExtractTokensTrainResumeAndGenerate) {
  const std::string root = test::fresh_temp_dir("joint");
  const std::string caps = caption_folder(root + "/caps"), data = root + "/tokens";
  const std::string config = write(root + "/pixart.json", kLatentPixArtConfig);
  const std::string t5 = write(root + "/t5.json", t5_config(64));

  auto r = run_command(kLit + " extract-latents --tokenizer " + kSpiece + " --vae " + kVae + " --data " + caps +
                       " --image-size 64 --max-length 24 -o " + data);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("1100 token ids (1000 pieces + 100 sentinels), 24 tokens"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("4 captions (24 token ids + mask, tokenizer crc32 "), std::string::npos) << r.output;
  const SafetensorsFile shard = SafetensorsFile::open(data + "/captions-00000.safetensors");
  const text::TokenBatch ref = text::T5Tokenizer::load(kSpiece).batch({kCaptions[0], kCaptions[3]}, {24});
  EXPECT_TRUE(at::equal(shard.tensor("tokens")[0], ref.input_ids[0]));
  EXPECT_TRUE(at::equal(shard.tensor("tokens")[3], ref.input_ids[1]));
  EXPECT_TRUE(at::equal(shard.tensor("mask")[3], ref.attention_mask[1]));
  EXPECT_FALSE(shard.contains("features"));
  EXPECT_FALSE(shard.contains("images"));  // latents instead, beside the captions
  EXPECT_TRUE(fs::exists(data + "/latents.json"));
  const nlohmann::json j = nlohmann::json::parse(std::ifstream(data + "/captions.json"));
  EXPECT_EQ(j["kind"], "tokens");
  EXPECT_EQ(j["tokenizer"], kSpiece);

  const std::string run = root + "/run";
  const std::string train = kLit + " train --config " + config + " --text-encoder-config " + t5 + " --tokenizer " +
                            kSpiece + " --data " + data + " -o " + run +
                            " --batch-size 2 --lr 1e-3 --ema-decay 0.9 --log-every 1 --checkpoint-every 2";
  r = run_command(train + " --max-steps 4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("text    T5 d_model 64, 2 layers, 4 heads x 16, d_ff 128, gated-gelu (gelu_new), vocab 1100"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("initialised from scratch (initializer_factor 1), trained jointly; tokenizer " + kSpiece),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("captions 24 token ids"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("step 4/4  loss "), std::string::npos) << r.output;
  r = run_command(train + " --max-steps 6 --resume " + run);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("at step 4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("step 6/6"), std::string::npos) << r.output;

  // Generation from the checkpoint with its EMA encoder folder, as with any T5 folder; the raw encoder gives
  // other latents (the prompt goes through the encoder that is named).
  const std::string ckpt = run + "/checkpoints/step-0000006";
  auto generate = [&](const std::string& encoder, const std::string& out) {
    return run_command(kLit + " generate -q --model " + ckpt + "/ema.safetensors --text-encoder " + ckpt + "/" +
                       encoder + " --vae " + kVae +
                       " --prompt 'a red cube' --null-caption learned --steps 4 --seed 1 -o " + out +
                       " --save-latents " + out + ".safetensors");
  };
  r = generate("text_encoder_ema", root + "/out_ema");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> pngs;
  for (const auto& e : fs::recursive_directory_iterator(root + "/out_ema"))
    if (e.path().extension() == ".png") pngs.push_back(e.path().string());
  ASSERT_EQ(pngs.size(), 1u);
  EXPECT_EQ(read_image(pngs[0]).sizes(), (std::vector<int64_t>{64, 64, 3}));
  r = generate("text_encoder", root + "/out_raw");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const at::Tensor ema = read_latents(root + "/out_ema.safetensors"), raw = read_latents(root + "/out_raw.safetensors");
  EXPECT_EQ(ema.sizes(), raw.sizes());
  EXPECT_FALSE(at::equal(ema, raw));
  EXPECT_TRUE(at::isfinite(ema).all().item<bool>());
  r = generate("text_encoder_ema", root + "/out_ema2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(at::equal(read_latents(root + "/out_ema2.safetensors"), ema));
}

TEST(CliTrainJointText, MismatchesAreOneClearLine) {
  const std::string root = test::fresh_temp_dir("joint_errors");
  const std::string caps = caption_folder(root + "/caps");
  const std::string config = write(root + "/pixart.json", kPixArtConfig);
  const std::string t5 = write(root + "/t5.json", t5_config(64));
  const std::string extract = kLit + " extract-latents --data " + caps + " --image-size 8 -o ";
  ASSERT_EQ(run_command(extract + root + "/tokens --tokenizer " + kSpiece + " --max-length 24").exit_code, 0);
  ASSERT_EQ(run_command(extract + root + "/tokens16 --tokenizer " + kSpiece + " --max-length 16").exit_code, 0);
  ASSERT_EQ(
      run_command(extract + root + "/features --text-encoder " + fixture("t2i/t5_tiny/single") + " --max-length 24")
          .exit_code,
      0);
  auto train = [&](const std::string& data, const std::string& extra) {
    return run_command(kLit + " train --config " + config + " --data " + data + " --batch-size 2 --max-steps 1 " +
                       extra);
  };
  const std::string joint = "--text-encoder-config " + t5 + " --tokenizer " + kSpiece;
  struct Case {
    test::CommandResult result;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {train(root + "/tokens", "--tokenizer " + kSpiece), "needs both --text-encoder-config"},
      {train(root + "/tokens",
             "--text-encoder-config " + write(root + "/t5_32.json", t5_config(32)) + " --tokenizer " + kSpiece),
       "the text encoder is 32 wide (d_model) but the model reads captions 64 wide (caption_channels)"},
      {train(root + "/tokens16", joint),
       "the data's captions are 16 tokens but the model takes 24 (model_max_length): extract with --max-length 24"},
      {train(root + "/features", joint),
       "holds T5 features: training a text encoder jointly needs the captions' token "
       "ids (lit extract-latents --tokenizer"},
      {train(root + "/tokens", ""),
       "holds caption token ids (lit extract-latents --tokenizer): train a text encoder "
       "jointly with the model (--text-encoder-config T5CONFIG.json --tokenizer"},
      {run_command(kLit + " train --preset DiT-S/2 --data fashion-mnist --max-steps 1 " + joint),
       "--text-encoder-config, --text-encoder-init and --tokenizer train a text encoder with a text-to-image model"},
      {run_command(extract + root + "/both --tokenizer " + kSpiece + " --text-encoder " +
                   fixture("t2i/t5_tiny/single")),
       "give --text-encoder (cache T5 features) or --tokenizer (cache token ids), not both"},
      {run_command(kLit + " distill --teacher " + root + "/none.safetensors --data " + root + "/tokens " + joint),
       ""},  // distill has no such options: CLI11 refuses them
  };
  for (const Case& c : cases) {
    EXPECT_NE(c.result.exit_code, 0) << c.result.output;
    if (c.expected.empty()) continue;
    EXPECT_NE(c.result.output.find(c.expected), std::string::npos) << c.result.output;
    EXPECT_TRUE(one_line(c.result.output)) << c.result.output;
  }
}

// A token folder made with another SentencePiece model (trained here with Debian's spm_train) is refused.
TEST(CliTrainJointText, DataOfAnotherTokenizerIsRefused) {
  if (std::system("command -v spm_train > /dev/null 2>&1") != 0) GTEST_SKIP() << "spm_train is not installed";
  const std::string root = test::fresh_temp_dir("joint_tokenizer");
  const std::string caps = caption_folder(root + "/caps");
  std::ofstream corpus(root + "/corpus.txt");
  for (int i = 0; i < 50; ++i) corpus << kCaptions[i % 4] << " number " << i << "\n";
  corpus.close();
  auto r = run_command("spm_train --input=" + root + "/corpus.txt --model_prefix=" + root +
                       "/other --vocab_size=40 --model_type=unigram --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1 "
                       "--hard_vocab_limit=false --num_threads=1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(kLit + " extract-latents --data " + caps + " --image-size 8 --max-length 24 --tokenizer " + root +
                  "/other.model -o " + root + "/tokens");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string config = write(root + "/pixart.json", kPixArtConfig);
  const std::string t5 = write(root + "/t5.json", t5_config(64));
  r = run_command(kLit + " train --config " + config + " --text-encoder-config " + t5 + " --tokenizer " + kSpiece +
                  " --data " + root + "/tokens --batch-size 2 --max-steps 1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("the data was tokenized with " + root + "/other.model (crc32 "), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("extract the captions again with --tokenizer " + kSpiece), std::string::npos) << r.output;
  EXPECT_TRUE(one_line(r.output)) << r.output;
}

// Every tensor of `source` is in `copy`, as float32 and equal to the source's value in float32.
void expect_float32_copy(const std::string& copy, const std::string& source) {
  const SafetensorsFile c = SafetensorsFile::open(copy);
  for (const auto& [name, tensor] : SafetensorsFile::open(source).tensors()) {
    ASSERT_TRUE(c.contains(name)) << copy << ": " << name;
    EXPECT_EQ(c.entry(name).dtype, "F32") << copy << ": " << name;
    EXPECT_TRUE(at::equal(c.tensor(name), tensor.to(at::kFloat))) << copy << ": " << name;
  }
}

// A joint run's weights brought back as the recipe's bundle brings them (its fp16 EMA, its EMA T5 folder, here
// in fp16 too), without the optimizer state: a new run starts from them exactly and trains both further.
TEST(CliTrainJointText, GoesOnFromFp16WeightsAndAT5Folder) {
  const std::string root = test::fresh_temp_dir("joint_init");
  const std::string caps = caption_folder(root + "/caps"), data = root + "/tokens";
  const std::string config = write(root + "/pixart.json", kPixArtConfig);
  const std::string t5 = write(root + "/t5.json", t5_config(64));
  auto r = run_command(kLit + " extract-latents --tokenizer " + kSpiece + " --data " + caps +
                       " --image-size 8 --max-length 24 -o " + data);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string args = " --data " + data + " --batch-size 2 --lr 1e-3 --ema-decay 0.9 --log-every 1";
  r = run_command(kLit + " train --config " + config + " --text-encoder-config " + t5 + " --tokenizer " + kSpiece +
                  args + " --max-steps 2 -o " + root + "/run1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string first = root + "/run1/checkpoints/step-0000002";
  const std::string teacher = root + "/pixart-teacher.safetensors", folder = root + "/t5";
  r = run_command(kLit + " convert " + first + "/ema.safetensors " + teacher + " --dtype fp16");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  text::save_t5_folder(
      folder, text::load_t5_encoder(text::find_t5_files(first + "/text_encoder_ema"), at::kCPU, at::kHalf), kSpiece);
  ASSERT_EQ(SafetensorsFile::open(folder + "/model.safetensors").entry("shared.weight").dtype, "F16");

  // No step: the checkpoint holds the starting weights, float32 master weights equal to the fp16 files'.
  const std::string init = " --model " + teacher + " --text-encoder-init " + folder;
  r = run_command(kLit + " train" + init + args + " --max-steps 0 -o " + root + "/run0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("parameters, loaded from " + teacher), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("loaded from " + folder + " (initializer_factor 1), trained jointly; tokenizer " + folder +
                          "/spiece.model"),
            std::string::npos)
      << r.output;
  const std::string start = root + "/run0/checkpoints/step-0000000";
  expect_float32_copy(start + "/model.safetensors", teacher);
  expect_float32_copy(start + "/text_encoder/model.safetensors", folder + "/model.safetensors");
  expect_float32_copy(start + "/text_encoder_ema/model.safetensors", folder + "/model.safetensors");

  // Two steps, with the data's tokenizer named (another path, the same vocabulary): both train, both are saved.
  r = run_command(kLit + " train" + init + " --tokenizer " + kSpiece + args + " --max-steps 2 -o " + root + "/run2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("trained jointly; tokenizer " + kSpiece), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("step 2/2  loss "), std::string::npos) << r.output;
  const std::string last = root + "/run2/checkpoints/step-0000002";
  for (const char* part : {"text_encoder", "text_encoder_ema"})
    for (const char* file : {"config.json", "model.safetensors", "spiece.model"})
      EXPECT_TRUE(fs::exists(last + "/" + part + "/" + file)) << part << "/" << file;
  const at::Tensor before = SafetensorsFile::open(start + "/text_encoder/model.safetensors").tensor("shared.weight");
  const at::Tensor after = SafetensorsFile::open(last + "/text_encoder/model.safetensors").tensor("shared.weight");
  EXPECT_EQ(after.scalar_type(), at::kFloat);
  EXPECT_FALSE(at::equal(before, after));  // the encoder trained
}

TEST(CliTrainJointText, TextEncoderInitMismatchesAreOneLine) {
  const std::string root = test::fresh_temp_dir("joint_init_errors");
  const std::string caps = caption_folder(root + "/caps"), data = root + "/tokens";
  ASSERT_EQ(run_command(kLit + " extract-latents --tokenizer " + kSpiece + " --data " + caps +
                        " --image-size 8 --max-length 24 -o " + data)
                .exit_code,
            0);
  const std::string config = write(root + "/pixart.json", kPixArtConfig);
  text::T5Config c = test::tiny_builtin_t5_config();  // vocab 1100: the tokenizer's ids
  text::save_t5_folder(root + "/t5", text::init_t5_encoder(c), kSpiece);
  c.d_model = 32;
  text::save_t5_folder(root + "/t5_32", text::init_t5_encoder(c), kSpiece);
  // A hand-made folder whose config has fewer ids than its tokenizer.
  fs::copy(root + "/t5", root + "/t5_small");
  nlohmann::json j = nlohmann::json::parse(std::ifstream(root + "/t5_small/config.json"));
  j["vocab_size"] = 1000;
  write(root + "/t5_small/config.json", j.dump());

  auto train = [&](const std::string& extra) {
    return run_command(kLit + " train --config " + config + " --data " + data + " --batch-size 2 --max-steps 1 " +
                       extra);
  };
  struct Case {
    test::CommandResult result;
    std::string expected;
  };
  std::vector<Case> cases = {
      {train("--text-encoder-init " + root + "/t5 --text-encoder-config " + write(root + "/t5.json", t5_config(64))),
       "--text-encoder-init " + root + "/t5 and --text-encoder-config " + root + "/t5.json: give one"},
      {train("--text-encoder-init " + root + "/t5_32"),
       root + "/t5_32: the text encoder is 32 wide (d_model) but the model reads captions 64 wide (caption_channels)"},
      {train("--text-encoder-init " + root + "/t5_small"),
       root + "/t5_small/config.json: vocab_size 1000 is less than the 1100 token ids of " + root +
           "/t5_small/spiece.model"},
      {train("--text-encoder-init " + root + "/none"), root + "/none: no such folder"},
      {run_command(kLit + " train --preset DiT-S/2 --data fashion-mnist --max-steps 1 --text-encoder-init " + root +
                   "/t5"),
       "--text-encoder-config, --text-encoder-init and --tokenizer train a text encoder with a text-to-image model"},
  };
  if (std::system("command -v spm_train > /dev/null 2>&1") == 0) {  // a tokenizer of another vocabulary
    std::ofstream corpus(root + "/corpus.txt");
    for (int i = 0; i < 50; ++i) corpus << kCaptions[i % 4] << " number " << i << "\n";
    corpus.close();
    ASSERT_EQ(run_command("spm_train --input=" + root + "/corpus.txt --model_prefix=" + root +
                          "/other --vocab_size=40 --model_type=unigram --pad_id=0 --eos_id=1 --unk_id=2 "
                          "--bos_id=-1 --hard_vocab_limit=false --num_threads=1")
                  .exit_code,
              0);
    const std::string other = root + "/other.model";
    cases.push_back({train("--text-encoder-init " + root + "/t5 --tokenizer " + other),
                     other + ": " + std::to_string(text::T5Tokenizer::load(other).vocab_size()) +
                         " token ids, but the encoder in " + root + "/t5 was trained with the 1100 of " + root +
                         "/t5/spiece.model"});
  }
  for (const Case& k : cases) {
    EXPECT_NE(k.result.exit_code, 0) << k.result.output;
    EXPECT_NE(k.result.output.find(k.expected), std::string::npos) << k.result.output;
    EXPECT_TRUE(one_line(k.result.output)) << k.result.output;
  }

  // Not for distill: the command has no such option, and the request says why.
  const auto r = run_command(kLit + " distill --teacher " + root + "/none.safetensors --data " + data +
                             " --text-encoder-init " + root + "/t5");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--text-encoder-init"), std::string::npos) << r.output;
  cli::TextTrainRequest request;
  request.distill = true;
  request.teacher = root + "/none.safetensors";
  request.text_encoder_init = root + "/t5";
  const std::string error = test::error_of([&] { cli::run_text_training(request); });
  EXPECT_EQ(error.rfind("distill: --text-encoder-init " + root + "/t5 trains a text encoder further with a model", 0),
            0u)
      << error;
}

}  // namespace
}  // namespace lit
