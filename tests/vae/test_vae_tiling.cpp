// Tiled decoding (model/vae_tiling.h): the same image as the untiled decode, within a memory budget.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <tuple>

#include "common/error.h"
#include "model/vae/vae.h"
#include "model/vae/vae_tiling.h"
#include "tests/test_util.h"

namespace lit {
namespace {

using test::fixture;
using test::rel_error;

const AutoencoderKL& tiny_vae() {
  static const AutoencoderKL vae = load_vae(fixture("vae/tiny_sd_vae"));
  return vae;
}

at::Tensor random_latents(int64_t n, int64_t h, int64_t w, uint64_t seed) {
  at::Generator g = at::detail::createCPUGenerator(seed);
  return at::randn({n, 4, h, w}, g);
}

TEST(VaeTiling, ReceptiveRadiusBoundsTheInfluenceOfALatentPixel) {
  // With the GroupNorm statistics held fixed, changing one position of the mid block's output changes the
  // image only within receptive_radius latent pixels of it: the overlap that makes tiles exact.
  const AutoencoderKL& vae = tiny_vae();
  const int64_t radius = vae::receptive_radius(vae.config());
  EXPECT_LE(radius, 16);
  const vae::Decoder& decoder = vae.decoder();
  const int64_t size = 2 * radius + 9, centre = size / 2, f = vae.config().downsample_factor();
  at::Generator g = at::detail::createCPUGenerator(3);
  const at::Tensor hidden = at::randn({1, vae.config().block_out_channels.back(), size, size}, g);
  vae::TilePlan whole;
  whole.rows = whole.cols = {0, size};
  at::NoGradGuard no_grad;
  const std::vector<vae::GroupStats> stats = vae::gather_norm_stats(decoder, hidden, whole);
  ASSERT_EQ(stats.size(), decoder.pixel_norm_layers());
  auto fixed = [&](const at::Tensor& h) {
    vae::TileNorms norms;
    norms.given = &stats;
    norms.region_h = norms.region_w = size;
    return decoder.forward_pixels(h, &norms);
  };
  at::Tensor bumped = hidden.clone();
  bumped.select(2, centre).select(2, centre).add_(1.0);
  const at::Tensor changed = (fixed(bumped) - fixed(hidden)).abs().amax({0, 1}) > 0;  // (H, W) image pixels
  const at::Tensor where = changed.nonzero();
  ASSERT_GT(where.size(0), 0);
  const int64_t reach = ((where.to(at::kDouble) + 0.5) / f - (centre + 0.5)).abs().max().ceil().item<int64_t>();
  std::printf("one latent pixel reaches %lld latent pixels; receptive_radius says %lld\n",
              static_cast<long long>(reach), static_cast<long long>(radius));
  EXPECT_LE(reach, radius);
  EXPECT_GE(reach, radius - 3);  // and the bound is not wastefully loose
}

TEST(VaeTiling, TiledDecodeMatchesUntiledOn64Latent) {
  // 2x2 tiles, each with less than half the latent as its own area (the 128-latent version of this test took
  // 5 minutes of CI's 2 cores and checked nothing more).
  const AutoencoderKL& vae = tiny_vae();
  const at::Tensor z = random_latents(1, 64, 64, 11);
  const at::Tensor whole = vae.decode(z);
  VaeTiling tiling;
  tiling.tile = 32;
  int64_t calls = 0, last_total = 0;
  tiling.progress = [&](int64_t done, int64_t total) {
    ++calls;
    EXPECT_EQ(done, calls);
    last_total = total;
  };
  const at::Tensor tiled = vae.decode(z, tiling);
  const int64_t passes = static_cast<int64_t>(vae.decoder().pixel_norm_layers()) + 1;  // statistics + output
  EXPECT_EQ(calls, passes * 4);                                                        // 2x2 tiles
  EXPECT_EQ(last_total, passes * 4);
  const double err = rel_error(tiled, whole);
  const double max_abs = (tiled - whole).abs().max().item<double>();
  std::printf("64x64 latent, 2x2 tiles of 32 + overlap %lld: relative error %.3g, max abs %.3g (image range %.3g)\n",
              static_cast<long long>(vae::receptive_radius(vae.config()) + vae::kBlendBand / 2), err, max_abs,
              (whole.max() - whole.min()).item<double>());
  EXPECT_LE(err, 1e-4);
}

TEST(VaeTiling, PerTileStatisticsAreFastButApproximate) {
  const AutoencoderKL& vae = tiny_vae();
  const at::Tensor z = random_latents(1, 32, 24, 5);
  const at::Tensor whole = vae.decode(z);
  VaeTiling tiling;
  tiling.tile = 16;
  const double exact = rel_error(vae.decode(z, tiling), whole);
  tiling.exact_group_norm = false;
  const double per_tile = rel_error(vae.decode(z, tiling), whole);
  std::printf("32x24 latent, tiles of 16: relative error %.3g with image-wide statistics, %.3g per tile\n", exact,
              per_tile);
  EXPECT_LE(exact, 1e-4);
  EXPECT_GT(per_tile, 10 * exact);
}

TEST(VaeTiling, SmallOverlapStillBlendsWithoutSeams) {
  // With less context than the receptive radius tiles are approximate, but the cross-fade keeps the error
  // spread out: no step along the tile edges.
  const AutoencoderKL& vae = tiny_vae();
  const at::Tensor z = random_latents(1, 32, 32, 9);
  VaeTiling tiling;
  tiling.tile = 16;
  tiling.overlap = 4;
  const at::Tensor diff = (vae.decode(z, tiling) - vae.decode(z)).abs();
  EXPECT_LE(diff.max().item<double>(), 0.5 * (vae.decode(z).abs().max().item<double>()));
}

TEST(VaeTiling, BudgetChoosesTheTileAndRefusesWhatCannotFit) {
  const VaeConfig sd;  // the SD 1.x VAE: 128, 256, 512, 512 channels
  VaeTiling tiling;
  tiling.memory_budget = int64_t{4} << 30;
  // A 512 px image fits untiled in 4 GiB.
  EXPECT_FALSE(vae::plan_tiled_decode(sd, 1, 64, 64, tiling, 4).has_value());
  // A 2048 px image does not; a 3072 px one gets about the same tile: the budget sets it, not the image.
  const auto p2k = vae::plan_tiled_decode(sd, 1, 256, 256, tiling, 4);
  const auto p3k = vae::plan_tiled_decode(sd, 1, 384, 384, tiling, 4);
  ASSERT_TRUE(p2k && p3k);
  EXPECT_LT(p2k->tile, 256);
  EXPECT_EQ(p2k->overlap, vae::receptive_radius(sd) + vae::kBlendBand / 2);
  EXPECT_NEAR(static_cast<double>(p3k->tile), static_cast<double>(p2k->tile), 0.1 * static_cast<double>(p2k->tile));
  const int64_t t = p2k->tile + 2 * p2k->overlap;
  EXPECT_LE(512 * 256 * 256 * 4 + vae::estimate_pixel_path_bytes(sd, 1, t, t, 4), tiling.memory_budget);
  std::printf("SD VAE, 4 GiB budget: tiles of %lld latent px (+%lld each side) for 2048 px images, %lld for 3072 px\n",
              static_cast<long long>(p2k->tile), static_cast<long long>(p2k->overlap),
              static_cast<long long>(p3k->tile));
  // Too small for the latent-resolution part of a 2048 px image, or for the smallest tile of a 768 px one.
  for (auto [budget_mib, latent, what] : {std::tuple<int64_t, int64_t, const char*>{64, 256, "latent-resolution part"},
                                          {300, 96, "the smallest tile needs"}}) {
    tiling.memory_budget = budget_mib << 20;
    try {
      vae::plan_tiled_decode(sd, 1, latent, latent, tiling, 4);
      FAIL() << "a " << budget_mib << " MiB budget cannot decode a " << latent << "^2 latent";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("memory budget of " + std::to_string(budget_mib) + " MiB"), std::string::npos) << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
    }
  }
}

}  // namespace
}  // namespace lit
