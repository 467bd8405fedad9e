// PixArt's DPM-Solver on continuous time (sampler/dpm_solver_vp.h) with text guidance (sampler/text_guidance.h)
// against tests/fixtures/t2i/e2e: from the fixture's caption features, null caption and noise, both tiny models.
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include "model/t2i/pixart_io.h"
#include "sampler/dpm_solver_vp.h"
#include "sampler/text_guidance.h"
#include "tests/t2i/t2i_test_util.h"

namespace lit {
namespace {

using test::max_rel;

at::Tensor e2e(const std::string& name) {
  return test::t2i_tensor("e2e/e2e_tiny.safetensors", name);
}

DPMSolverOptions fixture_options() {
  DPMSolverOptions o;
  o.steps = 10;
  o.order = 2;
  o.skip_type = "time_uniform";
  o.lower_order_final = true;
  return o;
}

TEST(DpmSolverVP, ScheduleTablesTimesAndModelTimes) {
  const NoiseScheduleVP s = NoiseScheduleVP::linear();
  EXPECT_LE(max_rel(s.log_alpha_array(), e2e("schedule_log_alpha_array")), 1e-6);
  EXPECT_LE(max_rel(s.t_array(), e2e("schedule_t_array")), 1e-7);
  const at::Tensor times = dpm_solver_time_steps(s, fixture_options());
  EXPECT_LE(max_rel(times, e2e("solver_timesteps_continuous")), 1e-7);
  EXPECT_LE(max_rel((times - 1. / 1000) * 1000., e2e("solver_model_input_t")), 1e-6);
  // lambda and its inverse agree; alpha^2 + sigma^2 = 1.
  const at::Tensor back = s.inverse_lambda(s.marginal_lambda(times));
  EXPECT_LE(max_rel(back, times), 1e-4);
  EXPECT_LE((s.marginal_alpha(times).pow(2) + s.marginal_std(times).pow(2) - 1).abs().max().item<double>(), 1e-6);
  // logSNR steps are uniform in lambda.
  DPMSolverOptions o = fixture_options();
  o.skip_type = "logSNR";
  const at::Tensor lam = s.marginal_lambda(dpm_solver_time_steps(s, o));
  const at::Tensor d = lam.narrow(0, 1, 10) - lam.narrow(0, 0, 10);
  EXPECT_LE((d - d.mean()).abs().max().item<double>() / d.mean().abs().item<double>(), 1e-3);
}

struct Calls {
  std::vector<at::Tensor> x, t, eps;
};

// The fixture's run for one model: every model call, every intermediate, the final latent.
void expect_e2e_run(PixArtMS& model, const std::string& prefix) {
  Calls calls;
  TextConditionalFn eps_fn = [&](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                                 const at::Tensor& mask) {
    const at::Tensor eps = model->forward_eps(x, t, y, mask);
    calls.x.push_back(x.clone());
    calls.t.push_back(t.clone());
    calls.eps.push_back(eps.clone());
    return eps;
  };
  TextCondition c;
  c.caption = e2e("caption_embs");
  c.mask = e2e("prompt_attention_mask");
  c.null_caption = e2e("null_y");
  c.scale = 4.5;
  std::vector<at::Tensor> intermediates;
  const at::Tensor out = dpm_solver_sample(text_guided_noise_fn(eps_fn, c), NoiseScheduleVP::linear(), e2e("noise"),
                                           fixture_options(), {}, &intermediates);
  ASSERT_EQ(calls.x.size(), 10u);
  EXPECT_LE(max_rel(at::stack(calls.t), e2e(prefix + "_model_call_t")), 1e-6);
  EXPECT_LE(max_rel(at::stack(calls.x), e2e(prefix + "_model_call_x")), 1e-5);
  EXPECT_LE(max_rel(at::stack(calls.eps), e2e(prefix + "_model_call_eps")), 1e-5);
  ASSERT_EQ(intermediates.size(), 11u);
  const at::Tensor ref = e2e(prefix + "_intermediates");
  for (int64_t k = 0; k < 11; ++k)
    EXPECT_LE(max_rel(intermediates[static_cast<size_t>(k)], ref[k]), 1e-5) << prefix << " intermediate " << k;
  EXPECT_LE(max_rel(out, e2e(prefix + "_final_latent")), 1e-5) << prefix;
  EXPECT_GT(out.abs().max().item<double>(), 10.0);  // O(100), as the README says
}

TEST(DpmSolverVP, EndToEndPixArt) {
  LoadedPixArt m = load_pixart(test::fixture("t2i/pixart_tiny/pixart_tiny.pth"));
  expect_e2e_run(m.model, "pixart");
}

TEST(DpmSolverVP, EndToEndLitT2I) {
  PixArtLoadOptions options;
  options.config = test::tiny_lit_config();
  LoadedPixArt m = load_pixart(test::fixture("t2i/lit_t2i_tiny/lit_t2i_tiny.safetensors"), options);
  expect_e2e_run(m.model, "lit");
}

TEST(DpmSolverVP, BadOptions) {
  const NoiseFn zero = [](const at::Tensor& x, const at::Tensor&) { return at::zeros_like(x); };
  DPMSolverOptions o = fixture_options();
  o.order = 3;
  EXPECT_NE(test::error_of([&] {
              dpm_solver_sample(zero, NoiseScheduleVP::linear(), e2e("noise"), o);
            }).find("order must be 1 or 2"),
            std::string::npos);
  o = fixture_options();
  o.skip_type = "karras";
  EXPECT_NE(test::error_of([&] { dpm_solver_time_steps(NoiseScheduleVP::linear(), o); }).find("unknown skip_type"),
            std::string::npos);
  TextCondition c;
  c.caption = e2e("caption_embs");
  c.scale = 4.5;
  const TextConditionalFn identity = [](const at::Tensor& x, const at::Tensor&, const at::Tensor&, const at::Tensor&) {
    return x;
  };
  EXPECT_NE(test::error_of([&] { text_guided_noise_fn(identity, c); }).find("needs the null caption"),
            std::string::npos);
  c.null_caption = e2e("null_y").narrow(2, 0, 20);
  EXPECT_NE(test::error_of([&] { text_guided_noise_fn(identity, c); }).find("captions' shape"), std::string::npos);
}

}  // namespace
}  // namespace lit
