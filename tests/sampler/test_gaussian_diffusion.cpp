#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cmath>

#include "sampler/distillation.h"
#include "sampler/gaussian_diffusion.h"
#include "sampler/likelihood.h"
#include "tests/test_util.h"
#include "common/error.h"
#include "weights/safetensors.h"

namespace lit {
namespace {

using test::fixture;
using test::rel_error;

TEST(GaussianDiffusion, PMeanVarianceMatchesDiT) {
  const auto file = SafetensorsFile::open(fixture("diffusion/p_mean_variance.safetensors"));
  const GaussianDiffusion diffusion = GaussianDiffusion::create("250");
  const at::Tensor x_t = file.tensor("x_t"), t = file.tensor("t"), output = file.tensor("model_output");
  ASSERT_EQ(output.size(1), 2 * x_t.size(1));
  const MeanVariance p = diffusion.p_mean_variance(output, x_t, t);
  for (const auto& [name, value] : {std::pair<const char*, at::Tensor>{"mean", p.mean},
                                    {"variance", p.variance},
                                    {"log_variance", p.log_variance},
                                    {"pred_xstart", p.pred_xstart}}) {
    EXPECT_EQ(value.scalar_type(), at::kFloat) << name;
    EXPECT_LE(rel_error(value, file.tensor(name)), 1e-6) << name;
  }
  // The same in float64 (coefficients not rounded to float32) stays within float32 rounding of DiT's.
  const MeanVariance p64 = diffusion.p_mean_variance(output.to(at::kDouble), x_t.to(at::kDouble), t);
  EXPECT_EQ(p64.mean.scalar_type(), at::kDouble);
  EXPECT_LE(rel_error(p64.mean, file.tensor("mean")), 1e-6);
  EXPECT_LE(rel_error(p64.log_variance, file.tensor("log_variance")), 1e-6);
  // predict_xstart alone equals p_mean_variance's.
  EXPECT_TRUE(at::equal(diffusion.predict_xstart(output, x_t, t), p.pred_xstart));
}

TEST(GaussianDiffusion, LearnedRangeEndsAreThePosteriorVarianceAndBeta) {
  const GaussianDiffusion diffusion = GaussianDiffusion::create("50");
  const at::Tensor x = at::randn({2, 3, 4, 4}, at::kDouble);
  const at::Tensor t = at::tensor(std::vector<int64_t>{7, 30});
  const at::Tensor eps = at::randn_like(x);
  const auto& s = diffusion.schedule();
  const MeanVariance lo = diffusion.p_mean_variance(at::cat({eps, at::full_like(x, -1.0)}, 1), x, t);
  const MeanVariance hi = diffusion.p_mean_variance(at::cat({eps, at::full_like(x, 1.0)}, 1), x, t);
  EXPECT_NEAR(lo.variance[1][0][0][0].item<double>(), s.posterior_variance[30], 1e-15);
  EXPECT_NEAR(hi.variance[0][2][3][3].item<double>(), s.betas[7], 1e-15);
  // Fixed variances match the learned ends and ignore (or do without) the variance channels.
  const GaussianDiffusion small(DiffusionSchedule::linear("50"), VarianceType::FixedSmall);
  const GaussianDiffusion large(DiffusionSchedule::linear("50"), VarianceType::FixedLarge);
  EXPECT_LE(rel_error(small.p_mean_variance(eps, x, t).variance, lo.variance), 1e-12);
  EXPECT_LE(rel_error(large.p_mean_variance(eps, x, t).variance, hi.variance), 1e-12);
  EXPECT_TRUE(at::equal(small.p_mean_variance(at::cat({eps, at::zeros_like(x)}, 1), x, t).mean,
                        small.p_mean_variance(eps, x, t).mean));
  EXPECT_LE(rel_error(small.p_mean_variance(eps, x, t).mean, lo.mean), 1e-12);
}

TEST(GaussianDiffusion, ForwardProcessAndPosteriorAreConsistent) {
  const GaussianDiffusion diffusion = GaussianDiffusion::create();
  const at::Tensor x0 = at::randn({3, 2, 4, 4}, at::kDouble), noise = at::randn_like(x0);
  const at::Tensor t = at::tensor(std::vector<int64_t>{0, 500, 999});
  const at::Tensor x_t = diffusion.q_sample(x0, t, noise);
  const double abar = diffusion.schedule().alphas_cumprod[500];
  EXPECT_LE(rel_error(x_t[1], std::sqrt(abar) * x0[1] + std::sqrt(1 - abar) * noise[1]), 1e-14);
  EXPECT_LE(rel_error(diffusion.predict_xstart_from_eps(x_t, t, noise), x0), 1e-10);
  EXPECT_LE(rel_error(diffusion.predict_eps_from_xstart(x_t, t, x0), noise), 1e-10);
  // The posterior mean at t is E[x_{t-1}] under q given x_0 and x_t: at t = 0 it is x_0 itself.
  const PosteriorMeanVariance q = diffusion.q_posterior_mean_variance(x0, x_t, t);
  EXPECT_LE(rel_error(q.mean[0], x0[0]), 1e-12);
  EXPECT_EQ(q.variance.sizes(), x0.sizes());
  EXPECT_EQ(q.log_variance_clipped.sizes(), x0.sizes());
}

TEST(GaussianDiffusion, BadShapesAndTimestepsThrow) {
  const GaussianDiffusion diffusion = GaussianDiffusion::create("25");
  const at::Tensor x = at::randn({2, 4, 8, 8});
  const at::Tensor t = at::tensor(std::vector<int64_t>{3, 4});
  EXPECT_THROW(diffusion.p_mean_variance(at::randn({2, 4, 8, 8}), x, t), Error);  // learned needs 2C
  EXPECT_THROW(diffusion.p_mean_variance(at::randn({2, 8, 4, 4}), x, t), Error);
  EXPECT_THROW(diffusion.p_mean_variance(at::randn({2, 8, 8, 8}), x, at::tensor(std::vector<int64_t>{3, 25})), Error);
  EXPECT_THROW(diffusion.p_mean_variance(at::randn({2, 8, 8, 8}), x, at::tensor(std::vector<int64_t>{3})), Error);
  EXPECT_THROW(diffusion.p_mean_variance(at::randn({2, 8, 8, 8}), x, t.to(at::kInt)), Error);
  EXPECT_THROW(diffusion.q_sample(x, t, at::randn({2, 4, 8, 7})), Error);
}

TEST(GaussianDiffusion, PerfectPredictionHasZeroMseAndZeroKl) {
  // eps = the true noise and v = -1 (the posterior variance): the model's p(x_{t-1} | x_t) is the true
  // posterior, so the KL term vanishes; at t = 0 the term is the decoder NLL, positive and finite.
  const GaussianDiffusion diffusion = GaussianDiffusion::create("250");
  const at::Tensor x0 = at::rand({3, 4, 8, 8}, at::kDouble) * 2 - 1, noise = at::randn_like(x0);
  const at::Tensor t = at::tensor(std::vector<int64_t>{0, 100, 249});
  at::Tensor seen_t;
  const ModelFn model = [&](const at::Tensor& /*x_t*/, const at::Tensor& t_original) {
    seen_t = t_original;
    return at::cat({noise, at::full_like(noise, -1.0)}, 1);
  };
  const TrainingLosses l = diffusion.training_losses(model, x0, t, noise);
  EXPECT_EQ(seen_t[1].item<int64_t>(), diffusion.schedule().timestep_map[100]);  // the original timestep
  EXPECT_EQ(seen_t[2].item<int64_t>(), 999);
  EXPECT_LE(l.mse.abs().max().item<double>(), 1e-20);
  EXPECT_LE(l.vb[1].abs().item<double>(), 1e-9);
  EXPECT_LE(l.vb[2].abs().item<double>(), 1e-9);
  EXPECT_GT(l.vb[0].item<double>(), 0.0);
  EXPECT_TRUE(std::isfinite(l.vb[0].item<double>()));
  EXPECT_LE(rel_error(l.loss, l.mse + l.vb), 1e-15);
  // A wrong variance costs bits (few here: at step 100 of 250, beta and the posterior variance are close).
  const ModelFn wrong = [&](const at::Tensor&, const at::Tensor&) {
    return at::cat({noise, at::full_like(noise, 0.5)}, 1);
  };
  EXPECT_GT(diffusion.training_losses(wrong, x0, t, noise).vb[1].item<double>(), 1e-6);
}

TEST(GaussianDiffusion, VariationalBoundTrainsOnlyTheVarianceChannels) {
  // The frozen mean: the eps channels' gradient is the MSE's alone, 2 (eps - noise) / (C H W).
  const GaussianDiffusion diffusion = GaussianDiffusion::create();
  const at::Tensor x0 = at::randn({2, 4, 4, 4}), noise = at::randn_like(x0);
  const at::Tensor t = at::tensor(std::vector<int64_t>{10, 700});
  const at::Tensor output = (at::randn({2, 8, 4, 4}) * 0.5).requires_grad_(true);
  const ModelFn model = [&](const at::Tensor&, const at::Tensor&) { return output * 1.0; };
  const TrainingLosses l = diffusion.training_losses(model, x0, t, noise);
  l.loss.sum().backward();
  const at::Tensor eps = output.detach().narrow(1, 0, 4);
  const at::Tensor expected = 2 * (eps - noise) / 64.0;
  EXPECT_LE(rel_error(output.grad().narrow(1, 0, 4), expected), 1e-6);
  EXPECT_GT(output.grad().narrow(1, 4, 4).abs().sum().item<double>(), 0.0);
}

TEST(GaussianDiffusion, FixedVarianceLossIsTheMseAlone) {
  const GaussianDiffusion diffusion(DiffusionSchedule::linear(), VarianceType::FixedSmall);
  const at::Tensor x0 = at::randn({2, 1, 4, 4}), noise = at::randn_like(x0);
  const at::Tensor t = at::tensor(std::vector<int64_t>{0, 999});
  const ModelFn model = [](const at::Tensor& x, const at::Tensor&) { return x * 0.5; };
  const TrainingLosses l = diffusion.training_losses(model, x0, t, noise);
  EXPECT_TRUE(at::equal(l.loss, l.mse));
  EXPECT_EQ(l.vb.abs().sum().item<float>(), 0.0f);
}

TEST(Likelihood, DiscretizedGaussianIsAProbabilityOverTheBins) {
  // Summed over the 256 bins of uint8 data in [-1, 1], the probabilities of any Gaussian add up to 1
  // (the outer bins extend to infinity).
  const at::Tensor levels = at::arange(256, at::kDouble) / 127.5 - 1;
  for (double mean : {-0.9, 0.0, 0.37}) {
    for (double log_scale : {-3.0, -1.0, 0.5}) {
      const at::Tensor lp =
          discretized_gaussian_log_likelihood(levels, at::full_like(levels, mean), at::full_like(levels, log_scale));
      EXPECT_NEAR(lp.exp().sum().item<double>(), 1.0, 1e-6) << mean << " " << log_scale;
    }
  }
  const at::Tensor z = at::zeros({1}, at::kDouble);
  EXPECT_NEAR(normal_kl(z, z, z, z).item<double>(), 0.0, 1e-15);
  EXPECT_NEAR(normal_kl(z + 1, z, z, z).item<double>(), 0.5, 1e-15);
}

TEST(Distillation, HybridLossAddsWeightedEpsAndVarianceMatching) {
  // The fixture's defaults and combination: kd.total = lit.loss + 0.5 kd.eps + 0.05 kd.var.
  const auto file = SafetensorsFile::open(fixture("diffusion/training_losses.safetensors"));
  const DistillationWeights defaults;
  EXPECT_FLOAT_EQ(file.tensor("kd.lambda_eps").item<float>(), static_cast<float>(defaults.lambda_eps));
  EXPECT_FLOAT_EQ(file.tensor("kd.lambda_var").item<float>(), static_cast<float>(defaults.lambda_var));
  EXPECT_LE(rel_error(file.tensor("lit.loss") + 0.5 * file.tensor("kd.eps") + 0.05 * file.tensor("kd.var"),
                      file.tensor("kd.total")),
            1e-6);

  TrainingLosses student;
  student.loss = at::tensor(std::vector<double>{1.0, 2.0});
  student.model_output = at::zeros({2, 8, 2, 2}, at::kDouble);
  at::Tensor teacher = at::zeros({2, 8, 2, 2}, at::kDouble);
  teacher.narrow(1, 0, 4).fill_(2.0);     // eps differs by 2 everywhere: mean square 4
  teacher.narrow(1, 4, 4)[1].fill_(1.0);  // variance differs by 1 for the second sample only
  const DistillationLosses kd = hybrid_distillation_terms(student, teacher, 4);
  EXPECT_NEAR(kd.eps[0].item<double>(), 4.0, 1e-15);
  EXPECT_NEAR(kd.var[0].item<double>(), 0.0, 1e-15);
  EXPECT_NEAR(kd.var[1].item<double>(), 1.0, 1e-15);
  EXPECT_NEAR(kd.total[0].item<double>(), 1.0 + 0.5 * 4.0, 1e-15);
  EXPECT_NEAR(kd.total[1].item<double>(), 2.0 + 0.5 * 4.0 + 0.05 * 1.0, 1e-15);
  EXPECT_THROW(hybrid_distillation_terms(student, at::zeros({2, 8, 2, 3}, at::kDouble), 4), Error);
}

TEST(Distillation, RunsTheTeacherOnTheStudentsNoisyInputWithoutGradients) {
  const GaussianDiffusion diffusion = GaussianDiffusion::create();
  const at::Tensor x0 = at::randn({2, 4, 4, 4}), noise = at::randn_like(x0);
  const at::Tensor t = at::tensor(std::vector<int64_t>{3, 600});
  const at::Tensor w = at::ones({1}).requires_grad_(true);
  at::Tensor student_x, teacher_x;
  bool teacher_grad_mode = true;
  const ModelFn student = [&](const at::Tensor& x, const at::Tensor&) {
    student_x = x;
    return at::cat({x * w, at::zeros_like(x)}, 1);
  };
  const ModelFn teacher = [&](const at::Tensor& x, const at::Tensor&) {
    teacher_x = x;
    teacher_grad_mode = at::GradMode::is_enabled();
    return at::cat({x * 0.5, at::ones_like(x)}, 1);
  };
  const DistillationLosses kd = hybrid_distillation_losses(diffusion, student, teacher, x0, t, noise);
  EXPECT_TRUE(at::equal(student_x, teacher_x));
  EXPECT_FALSE(teacher_grad_mode);
  EXPECT_LE(rel_error(kd.eps, mean_flat((0.5 * student_x).pow(2))), 1e-6);
  EXPECT_LE(rel_error(kd.var, at::ones({2})), 1e-6);
  kd.total.sum().backward();
  EXPECT_TRUE(w.grad().defined());
}

// The cache behind extract() on a GPU (exercised here on the CPU device): one tensor per (table, device,
// dtype), made once; a copy starts empty, so it never hands out another object's table.
TEST(DeviceTableCache, MakesEachTableOnceAndCopiesStartEmpty) {
  const std::vector<double> a = {0.5, 0.25, 0.125}, b = {1.0, 2.0, 3.0};
  int made = 0;
  auto maker = [&made](const std::vector<double>& v) {
    return [&made, &v] {
      ++made;
      return at::tensor(v, at::kDouble);
    };
  };
  DeviceTableCache cache;
  const at::Tensor fa = cache.get(&a, maker(a), at::kCPU, at::kFloat);
  EXPECT_TRUE(at::equal(fa, at::tensor(a, at::kDouble).to(at::kFloat)));
  EXPECT_TRUE(at::equal(cache.get(&a, maker(a), at::kCPU, at::kFloat), fa));
  EXPECT_EQ(made, 1);
  EXPECT_EQ(cache.get(&a, maker(a), at::kCPU, at::kDouble).scalar_type(), at::kDouble);
  EXPECT_TRUE(at::equal(cache.get(&b, maker(b), at::kCPU, at::kFloat), at::tensor(b, at::kDouble).to(at::kFloat)));
  EXPECT_EQ(made, 3);
  DeviceTableCache copy(cache);
  copy.get(&a, maker(a), at::kCPU, at::kFloat);
  EXPECT_EQ(made, 4);
  cache = copy;
  cache.get(&b, maker(b), at::kCPU, at::kFloat);
  EXPECT_EQ(made, 5);
}

}  // namespace
}  // namespace lit
