// The samplers on Gaussian data, whose exact noise predictor, reverse variance and ODE solution are known
// in closed form (gaussian_model.h): they must reproduce the data distribution, and the deterministic ones
// must approach the exact ODE map as the steps grow, DPM-Solver++ faster than DDIM.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "sampler/sampler.h"
#include "tests/sampler/gaussian_model.h"

namespace lit {
namespace {

using test::gaussian_eps_model;
using test::GaussianData;

// 32 images of 4x16x16 independent pixels: 32768 samples, standard errors sigma/181 (mean) and
// sigma/256 (std).
constexpr int64_t kImages = 32;
const std::vector<int64_t> kShape = {kImages, 4, 16, 16};

struct Moments {
  double mean, std;
};
Moments moments(const at::Tensor& x) {
  const at::Tensor d = x.to(at::kDouble);
  return {d.mean().item<double>(), d.std().item<double>()};
}

// Runs `sampler` on `diffusion` from seeded noise in float32, as the tools do.
at::Tensor run(const Sampler& sampler, const GaussianDiffusion& diffusion, const ModelFn& model, uint64_t seed) {
  SeededNoise noise(seed, 0, kImages);
  const at::Tensor x_T = noise.draw(kShape);
  return sampler.sample(model, diffusion, x_T, noise);
}

class GaussianSampling : public ::testing::Test {
 protected:
  GaussianData data;  // mu 0.7, sigma 0.3
  double n = static_cast<double>(kImages * 4 * 16 * 16);
  double mean_tol() const { return 4 * data.sigma / std::sqrt(n); }     // 4 standard errors
  double std_tol() const { return 4 * data.sigma / std::sqrt(2 * n); }  // 4 standard errors
};

TEST_F(GaussianSampling, Ddpm250WithTheExactReverseVarianceReproducesTheData) {
  // v chosen so the learned-range variance is the exact reverse variance: ancestral sampling is then exact
  // at any step count (up to the N(0, 1) prior at t = T and no noise at t = 0: std 0.29983 expected).
  const GaussianDiffusion diffusion = GaussianDiffusion::create("250");
  const ModelFn model = gaussian_eps_model(data, test::exact_reverse_variance_values(data, diffusion));
  const Moments m = moments(run(DDPMSampler(), diffusion, model, 1));
  EXPECT_NEAR(m.mean, data.mu, mean_tol());
  EXPECT_NEAR(m.std, data.sigma, std_tol());
}

TEST_F(GaussianSampling, Ddpm250WithFixedVariancesBracketsTheData) {
  // A model without learned sigma. The fixed variances are the two ends of the exact one, so the sample std
  // is a little low with the small one (0.2870 exactly for this discretisation) and a little high with the
  // large one (0.3042); the means are right.
  const ModelFn model = gaussian_eps_model(data);
  const GaussianDiffusion small(DiffusionSchedule::linear("250"), VarianceType::FixedSmall);
  const GaussianDiffusion large(DiffusionSchedule::linear("250"), VarianceType::FixedLarge);
  const Moments s = moments(run(DDPMSampler(), small, model, 2));
  const Moments l = moments(run(DDPMSampler(), large, model, 3));
  EXPECT_NEAR(s.mean, data.mu, mean_tol());
  EXPECT_NEAR(l.mean, data.mu, mean_tol());
  EXPECT_NEAR(s.std, 0.2870, std_tol());
  EXPECT_NEAR(l.std, 0.3042, std_tol());
}

TEST_F(GaussianSampling, Ddim50AndDpmSolver20ReproduceTheData) {
  // Deterministic samplers follow the probability-flow ODE: the mean is right (to the 0.0013 bias of the
  // N(0, 1) prior), the std carries the discretisation error that the ODE tests below measure (exactly
  // 0.2745 for DDIM-50 and 0.2584 for DPM-Solver++-20 on this narrow Gaussian; both tend to 0.3).
  const ModelFn model = gaussian_eps_model(data, [](int64_t) { return 0.0; });
  const Moments ddim = moments(run(DDIMSampler(), GaussianDiffusion::create("50"), model, 4));
  const Moments dpm = moments(run(DPMSolverPP2MSampler(), GaussianDiffusion::create("20"), model, 5));
  EXPECT_NEAR(ddim.mean, data.mu, mean_tol() + 0.0013);
  EXPECT_NEAR(dpm.mean, data.mu, mean_tol() + 0.0013);
  EXPECT_NEAR(ddim.std, 0.2745, std_tol());
  EXPECT_NEAR(dpm.std, 0.2584, std_tol());
  EXPECT_NEAR(ddim.std, data.sigma, 0.03);
  EXPECT_NEAR(dpm.std, data.sigma, 0.045);
}

TEST_F(GaussianSampling, DdimWithEtaOneIsStochasticAndStillOnTarget) {
  const ModelFn model = gaussian_eps_model(data);
  const GaussianDiffusion diffusion(DiffusionSchedule::linear("250"), VarianceType::FixedSmall);
  const Moments m = moments(run(DDIMSampler(1.0), diffusion, model, 6));
  // eta = 1 is DDPM with the posterior variance: the same 0.2870 as fixed-small DDPM.
  EXPECT_NEAR(m.mean, data.mu, mean_tol());
  EXPECT_NEAR(m.std, 0.2870, std_tol());
}

// Root-mean-square distance, in float64, between a deterministic sampler's map of x_T and the exact ODE map.
double ode_error(const Sampler& sampler, int64_t steps, const GaussianData& data, const at::Tensor& x_T) {
  const ModelFn model = gaussian_eps_model(data);
  const GaussianDiffusion diffusion(DiffusionSchedule::linear(std::to_string(steps)), VarianceType::FixedSmall);
  struct NoNoise : NoiseSource {
    at::Tensor draw(at::IntArrayRef) override { throw std::logic_error("a deterministic sampler drew noise"); }
  } no_noise;
  const at::Tensor x0 = sampler.sample(model, diffusion, x_T, no_noise);
  return (x0 - data.ode_solution(x_T)).pow(2).mean().sqrt().item<double>();
}

TEST_F(GaussianSampling, DpmSolverIsCloserToTheExactOdeSolutionThanDdim) {
  const at::Tensor x_T = at::randn({4, 4, 8, 8}, at::kDouble);
  const DDIMSampler ddim;
  const DPMSolverPP2MSampler dpm;
  const double ddim20 = ode_error(ddim, 20, data, x_T), dpm20 = ode_error(dpm, 20, data, x_T);
  const double ddim50 = ode_error(ddim, 50, data, x_T), dpm50 = ode_error(dpm, 50, data, x_T);
  const double ddim100 = ode_error(ddim, 100, data, x_T), dpm100 = ode_error(dpm, 100, data, x_T);
  const double ddim1000 = ode_error(ddim, 1000, data, x_T);
  EXPECT_LT(dpm20, ddim20);                  // the requirement (about 0.042 vs 0.062 std units)
  EXPECT_LT(dpm50, ddim50 / 4);              // second order pays off quickly: about 0.0034 vs 0.026
  EXPECT_LT(dpm100, 1e-3);                   // DDIM needs 1000 steps to get near this
  EXPECT_NEAR(ddim100 / ddim50, 0.5, 0.05);  // DDIM is first order
  EXPECT_LT(ddim1000, 2e-3);                 // and converges to the closed form
  // Wider data, where no step is stiff: still ahead.
  GaussianData wide;
  wide.sigma = 1.0;
  EXPECT_LT(ode_error(dpm, 20, wide, x_T), ode_error(ddim, 20, wide, x_T) / 10);
}

}  // namespace
}  // namespace lit
