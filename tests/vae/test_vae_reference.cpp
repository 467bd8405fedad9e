// AutoencoderKL against diffusers' outputs (fixtures/vae): encode -> posterior mean and log variance, decode
// of the mean, from the diffusers folder and from the file with the older attention names; the loader's errors.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "model/vae/vae.h"
#include "tests/test_util.h"
#include "common/error.h"
#include "weights/safetensors.h"

namespace lit {
namespace {

using test::error_of;

using test::fixture;
using test::rel_error;

const std::string kFolder = fixture("vae/tiny_sd_vae");
const std::string kLegacy = fixture("vae/tiny_sd_vae_legacy_names.safetensors");

struct Reference {
  at::Tensor image, mean, logvar, decoded;
};

Reference reference() {
  const auto f = SafetensorsFile::open(fixture("vae/vae_io.safetensors"));
  return {f.tensor("image"), f.tensor("latent_mean"), f.tensor("latent_logvar"), f.tensor("decoded")};
}

void expect_matches_reference(const AutoencoderKL& vae) {
  const Reference ref = reference();
  const DiagonalGaussian posterior = vae.encode(ref.image);
  EXPECT_LE(rel_error(posterior.mean, ref.mean), 1e-5);
  EXPECT_LE(rel_error(posterior.logvar, ref.logvar), 1e-5);
  EXPECT_LE(rel_error(vae.decode(ref.mean), ref.decoded), 1e-5);
}

// Writes `text` to a file under the test's scratch folder and returns its path.
std::string write_text(const std::string& name, const std::string& text) {
  const std::string path = test::temp_path(name);
  std::ofstream(path) << text;
  return path;
}

TEST(VaeReference, ConfigFromDiffusersFolder) {
  const VaeConfig c = read_vae_config(kFolder + "/config.json");
  EXPECT_EQ(c.block_out_channels, (std::vector<int64_t>{32, 32, 64, 64}));
  EXPECT_EQ(c.latent_channels, 4);
  EXPECT_EQ(c.layers_per_block, 2);
  EXPECT_EQ(c.downsample_factor(), 8);
  EXPECT_DOUBLE_EQ(c.scaling_factor, 0.18215);
  EXPECT_DOUBLE_EQ(c.shift_factor, 0.0);  // null in the file
}

TEST(VaeReference, FolderMatchesDiffusers) {
  const AutoencoderKL vae = load_vae(kFolder);
  EXPECT_EQ(vae.latent_channels(), 4);
  expect_matches_reference(vae);
}

TEST(VaeReference, LegacyAttentionNamesMatchDiffusers) {
  VaeLoadOptions options;
  options.config_path = kFolder + "/config.json";
  expect_matches_reference(load_vae(kLegacy, options));
}

TEST(VaeReference, SingleFileFindsConfigBesideIt) {
  // A lone weights file next to a config.json, as many VAE downloads come.
  const std::string dir = test::temp_path("single");
  ::mkdir(dir.c_str(), 0755);
  std::ifstream src(kFolder + "/config.json");
  std::ofstream(dir + "/config.json") << src.rdbuf();
  const std::string weights = dir + "/sd-vae.safetensors";
  std::ifstream w(kLegacy, std::ios::binary);
  std::ofstream(weights, std::ios::binary) << w.rdbuf();
  const AutoencoderKL vae = load_vae(weights);
  const Reference ref = reference();
  EXPECT_LE(rel_error(vae.decode(ref.mean), ref.decoded), 1e-5);
}

TEST(VaeReference, ScalingIntoTheModelSpaceAndBack) {
  const AutoencoderKL vae = load_vae(kFolder);
  const at::Tensor z = at::randn({1, 4, 2, 2});
  EXPECT_TRUE(at::allclose(vae.to_model_space(z), z * 0.18215));
  EXPECT_TRUE(at::allclose(vae.from_model_space(vae.to_model_space(z)), z, 1e-6, 1e-6));
}

TEST(VaeReference, PosteriorSamplesFollowTheGenerator) {
  const AutoencoderKL vae = load_vae(kFolder);
  const DiagonalGaussian posterior = vae.encode(reference().image);
  at::Generator g1 = at::detail::createCPUGenerator(7), g2 = at::detail::createCPUGenerator(7);
  const at::Tensor a = posterior.sample(g1), b = posterior.sample(g2);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::equal(a, posterior.mean));
  EXPECT_TRUE(at::equal(posterior.mode(), posterior.mean));
}

TEST(VaeReference, WrongFolderIsAClearError) {
  const std::string msg = error_of([] { load_vae("/no/such/vae"); });
  EXPECT_NE(msg.find("/no/such/vae: no such file or folder"), std::string::npos) << msg;
  // A folder without config.json: e.g. a DiT checkpoint folder given as the VAE.
  const std::string no_config = error_of([&] { load_vae(fixture("vae")); });
  EXPECT_NE(no_config.find("no config.json"), std::string::npos) << no_config;
  EXPECT_EQ(no_config.find('\n'), std::string::npos) << no_config;
}

TEST(VaeReference, MissingConfigBesideAFileIsAClearError) {
  const std::string msg = error_of([] { load_vae(kLegacy); });
  EXPECT_NE(msg.find(kLegacy + ": no config.json beside it"), std::string::npos) << msg;
}

TEST(VaeReference, ConfigOfAnotherModelIsAClearError) {
  VaeLoadOptions options;
  options.config_path = fixture("dit/config.json");
  const std::string msg = error_of([&] { load_vae(kFolder, options); });
  EXPECT_NE(msg.find("not an AutoencoderKL config"), std::string::npos) << msg;
  options.config_path = write_text("unet.json", R"({"_class_name": "UNet2DConditionModel"})");
  const std::string unet = error_of([&] { load_vae(kFolder, options); });
  EXPECT_NE(unet.find("not an AutoencoderKL"), std::string::npos) << unet;
}

TEST(VaeReference, ConfigThatDoesNotMatchTheWeightsNamesTheTensor) {
  VaeLoadOptions options;
  options.config_path = write_text("wide.json", R"({"block_out_channels": [32, 32, 64, 128], "latent_channels": 4,
      "layers_per_block": 2, "norm_num_groups": 32})");
  const std::string msg = error_of([&] { load_vae(kFolder, options); });
  EXPECT_NE(msg.find("has shape [64"), std::string::npos) << msg;
  EXPECT_NE(msg.find("implies [128"), std::string::npos) << msg;
  options.config_path = write_text("no_attention.json", R"({"block_out_channels": [32, 32, 64, 64],
      "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "mid_block_add_attention": false})");
  const std::string extra = error_of([&] { load_vae(kFolder, options); });
  EXPECT_NE(extra.find("unexpected tensor"), std::string::npos) << extra;
}

TEST(VaeReference, LatentChannelsMustMatchTheModel) {
  const AutoencoderKL vae = load_vae(kFolder);
  EXPECT_NO_THROW(check_latent_channels(vae, 4, "DiT-XL/2"));
  const std::string msg = error_of([&] { check_latent_channels(vae, 8, "LiT-S/2"); });
  EXPECT_NE(msg.find("has 4 latent channels, but LiT-S/2 has 8"), std::string::npos) << msg;
  const std::string decode = error_of([&] { vae.decode(at::zeros({1, 8, 4, 4})); });
  EXPECT_NE(decode.find("expected (N, 4, H, W)"), std::string::npos) << decode;
  const std::string odd = error_of([&] { vae.encode(at::zeros({1, 3, 60, 64})); });
  EXPECT_NE(odd.find("not a multiple of 8"), std::string::npos) << odd;
}

}  // namespace
}  // namespace lit
