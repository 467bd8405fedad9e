#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "sampler/schedule.h"
#include "tests/test_util.h"
#include "common/error.h"
#include "weights/safetensors.h"

namespace lit {
namespace {

using test::fixture;

// Largest elementwise |a - b| / |b| (|a - b| where b == 0).
double max_rel_error(const std::vector<double>& a, const at::Tensor& b) {
  if (static_cast<int64_t>(a.size()) != b.numel()) return INFINITY;
  const at::Tensor ref = b.to(at::kDouble).contiguous();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double r = ref[static_cast<int64_t>(i)].item<double>();
    const double err = std::abs(a[i] - r) / (r == 0 ? 1.0 : std::abs(r));
    if (!(err <= worst)) worst = err;  // NaN propagates
  }
  return worst;
}

TEST(Schedule, MatchesDiTForEveryRespacingAndArray) {
  const auto file = SafetensorsFile::open(fixture("diffusion/schedules.safetensors"));
  for (int64_t steps : {1000, 250, 50, 25}) {
    SCOPED_TRACE("respacing " + std::to_string(steps));
    const DiffusionSchedule s = DiffusionSchedule::linear(steps == 1000 ? "" : std::to_string(steps));
    const std::string p = std::to_string(steps) + ".";
    ASSERT_EQ(s.size(), steps);
    EXPECT_EQ(s.original_num_steps, 1000);

    const at::Tensor map = file.tensor(p + "timestep_map");
    ASSERT_EQ(map.numel(), steps);
    for (int64_t i = 0; i < steps; ++i) ASSERT_EQ(s.timestep_map[i], map[i].item<int64_t>()) << "step " << i;

    const std::pair<const char*, const std::vector<double>*> arrays[] = {
        {"betas", &s.betas},
        {"alphas_cumprod", &s.alphas_cumprod},
        {"alphas_cumprod_prev", &s.alphas_cumprod_prev},
        {"posterior_variance", &s.posterior_variance},
        {"posterior_log_variance_clipped", &s.posterior_log_variance_clipped},
        {"posterior_mean_coef1", &s.posterior_mean_coef1},
        {"posterior_mean_coef2", &s.posterior_mean_coef2},
        {"sqrt_recip_alphas_cumprod", &s.sqrt_recip_alphas_cumprod},
        {"sqrt_recipm1_alphas_cumprod", &s.sqrt_recipm1_alphas_cumprod},
    };
    for (const auto& [name, values] : arrays) {
      const at::Tensor ref = file.tensor(p + name);
      EXPECT_EQ(ref.scalar_type(), at::kDouble) << name;
      // float64 throughout: agreement to the last bits, far inside the 1e-6 the issue asks for.
      EXPECT_LE(max_rel_error(*values, ref), 1e-12) << name;
    }
  }
}

TEST(Schedule, LinearBetasSpanTheRangeAndScaleWithTheStepCount) {
  const auto b = linear_beta_schedule(1000);
  ASSERT_EQ(b.size(), 1000u);
  EXPECT_DOUBLE_EQ(b.front(), 1e-4);
  EXPECT_DOUBLE_EQ(b.back(), 0.02);
  const auto b4000 = linear_beta_schedule(4000);  // scaled by 1000 / 4000
  EXPECT_DOUBLE_EQ(b4000.front(), 0.25e-4);
  EXPECT_DOUBLE_EQ(b4000.back(), 0.005);
}

TEST(Schedule, RespacingKeepsCumulativeAlphasAtTheKeptSteps) {
  const DiffusionSchedule base = DiffusionSchedule::linear();
  const DiffusionSchedule s = DiffusionSchedule::linear("ddim50");
  ASSERT_EQ(s.size(), 50);
  for (int64_t i = 0; i < s.size(); ++i) {
    EXPECT_EQ(s.timestep_map[i], 20 * i);
    EXPECT_NEAR(s.alphas_cumprod[i], base.alphas_cumprod[s.timestep_map[i]], 1e-15);
  }
  // Respacing a respaced process composes the maps.
  const DiffusionSchedule twice = s.respaced({0, 10, 49});
  EXPECT_EQ(twice.timestep_map, (std::vector<int64_t>{0, 200, 980}));
  EXPECT_NEAR(twice.alphas_cumprod[2], base.alphas_cumprod[980], 1e-15);
}

TEST(Schedule, SpaceTimestepsFollowsDiTsRule) {
  // DiT's own example: 300 steps in sections of 10, 15, 20 strides each third separately.
  const auto steps = space_timesteps(300, "10,15,20");
  ASSERT_EQ(steps.size(), 45u);
  EXPECT_EQ(steps.front(), 0);
  EXPECT_EQ(steps[9], 99);    // the first section ends at its last step
  EXPECT_EQ(steps[10], 100);  // the second starts at its first
  EXPECT_EQ(steps.back(), 299);
  // Fractional strides round half to even, as Python's round(): 10 steps into 3 is 0, 4.5 -> 4, 9.
  EXPECT_EQ(space_timesteps(10, "3"), (std::vector<int64_t>{0, 4, 9}));
  // Uneven sections: the first (extra) ones are one step longer.
  EXPECT_EQ(space_timesteps(10, "2,2,2"), (std::vector<int64_t>{0, 3, 4, 6, 7, 9}));
  const auto s250 = space_timesteps(1000, "250");
  EXPECT_EQ(s250.size(), 250u);
  EXPECT_EQ(s250.front(), 0);
  EXPECT_EQ(s250.back(), 999);
  EXPECT_EQ(space_timesteps(1000, "1000").size(), 1000u);
  EXPECT_EQ(space_timesteps(1000, " 25 ").size(), 25u);
  // DDIM's integer stride.
  EXPECT_EQ(space_timesteps(10, "ddim4"), (std::vector<int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(space_timesteps(1000, "ddim7").size(), 7u);
}

TEST(Schedule, ImpossibleRespacingsThrowOneLineErrors) {
  for (const char* bad : {"2000", "0", "", "abc", "10,,5", "-5", "ddim", "ddimx", "500,600"}) {
    SCOPED_TRACE(bad);
    try {
      space_timesteps(1000, bad);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
      EXPECT_NE(std::string(e.what()).find("respacing"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(space_timesteps(10, "ddim6"), Error);  // no integer stride gives 6 of 10
  EXPECT_THROW(DiffusionSchedule::from_betas({0.1, 0.0}), Error);
  EXPECT_THROW(DiffusionSchedule::from_betas({0.1, 1.5}), Error);
  EXPECT_THROW(DiffusionSchedule::linear().respaced({5, 5}), Error);
  EXPECT_THROW(DiffusionSchedule::linear().respaced({1000}), Error);
}

TEST(Schedule, OneStepProcessStillHasAFiniteClippedLogVariance) {
  const DiffusionSchedule s = DiffusionSchedule::linear("1");
  ASSERT_EQ(s.size(), 1);
  EXPECT_EQ(s.timestep_map[0], 0);
  EXPECT_TRUE(std::isfinite(s.posterior_log_variance_clipped[0]));
}

}  // namespace
}  // namespace lit
