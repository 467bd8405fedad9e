// The diffusion code driving the real networks (the tiny DiT and LiT of the fixtures) against the reference:
// DiT's training losses and the hybrid distillation terms, and whole sampling runs replayed from the same
// initial and per-step noise.
#include <gtest/gtest.h>

#include "model/backbone/model_io.h"
#include "sampler/distillation.h"
#include "sampler/guidance.h"
#include "sampler/sampler.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"

namespace lit {
namespace {

using test::fixture;
using test::rel_error;

ModelConfig tiny_dit_config() {
  return ModelConfig::from_json_file(fixture("dit/config.json"));
}

ModelConfig tiny_lit_config() {
  ModelConfig c = tiny_dit_config();  // fixtures/lit/config.json: the same with linear attention, 2 heads
  c.attention = AttentionType::Linear;
  c.num_heads = 2;
  c.dwc_kernel = 5;
  return c;
}

// Loaded once for the whole suite (eval mode: no label dropout).
DiT& tiny_dit() {
  static DiT model = load_model(fixture("dit/dit_tiny.pt"), {tiny_dit_config()}).model;
  return model;
}
DiT& tiny_lit() {
  static DiT model = load_model(fixture("lit/lit_tiny.pt"), {tiny_lit_config()}).model;
  return model;
}

ClassConditionalFn forward_of(DiT& model) {
  return [&model](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) { return model->forward(x, t, y); };
}

// Replays the reference's recorded per-step noise: draw k returns noise[k], the first rows (the reference
// drew it for its doubled batch under guidance; the unconditional half's samples are discarded, so only the
// conditional rows matter).
class RecordedNoise : public NoiseSource {
 public:
  explicit RecordedNoise(at::Tensor noise) : noise_(std::move(noise)) {}
  at::Tensor draw(at::IntArrayRef shape) override {
    if (next_ >= noise_.size(0)) throw std::logic_error("more noise drawn than recorded");
    return noise_[next_++].narrow(0, 0, shape[0]);
  }
  int64_t drawn() const { return next_; }

 private:
  at::Tensor noise_;
  int64_t next_ = 0;
};

struct NoNoise : NoiseSource {
  at::Tensor draw(at::IntArrayRef) override { throw std::logic_error("a deterministic sampler drew noise"); }
};

TEST(ReferenceLosses, DiTAndLiTTrainingLossesAndDistillationTerms) {
  const auto file = SafetensorsFile::open(fixture("diffusion/training_losses.safetensors"));
  const GaussianDiffusion diffusion = GaussianDiffusion::create();
  const at::Tensor x_start = file.tensor("x_start"), t = file.tensor("t"), noise = file.tensor("noise");
  const at::Tensor y = file.tensor("y");
  auto model_fn = [&y](DiT& model) -> ModelFn {
    return [&model, &y](const at::Tensor& x, const at::Tensor& tt) { return model->forward(x, tt, y); };
  };
  at::NoGradGuard no_grad;
  const TrainingLosses dit = diffusion.training_losses(model_fn(tiny_dit()), x_start, t, noise);
  EXPECT_LE(rel_error(dit.x_t, file.tensor("x_t")), 1e-6);
  EXPECT_LE(rel_error(dit.loss, file.tensor("dit.loss")), 1e-6);
  EXPECT_LE(rel_error(dit.mse, file.tensor("dit.mse")), 1e-6);
  EXPECT_LE(rel_error(dit.vb, file.tensor("dit.vb")), 1e-6);

  const DistillationWeights weights{file.tensor("kd.lambda_eps").item<double>(),
                                    file.tensor("kd.lambda_var").item<double>()};
  const DistillationLosses kd =
      hybrid_distillation_losses(diffusion, model_fn(tiny_lit()), model_fn(tiny_dit()), x_start, t, noise, weights);
  EXPECT_LE(rel_error(kd.student.loss, file.tensor("lit.loss")), 1e-6);
  EXPECT_LE(rel_error(kd.student.mse, file.tensor("lit.mse")), 1e-6);
  EXPECT_LE(rel_error(kd.student.vb, file.tensor("lit.vb")), 1e-6);
  EXPECT_LE(rel_error(kd.eps, file.tensor("kd.eps")), 1e-6);
  EXPECT_LE(rel_error(kd.var, file.tensor("kd.var")), 1e-6);
  EXPECT_LE(rel_error(kd.total, file.tensor("kd.total")), 1e-6);
}

TEST(ReferenceGuidance, WrapperEqualsTheModelsForwardWithCfgAndTheReference) {
  const auto io = SafetensorsFile::open(fixture("dit/dit_tiny_io.safetensors"));
  const at::Tensor x = io.tensor("cfg_x"), t = io.tensor("cfg_t"), y = io.tensor("cfg_y");
  const double scale = io.tensor("cfg_scale").item<double>();
  const int64_t half = x.size(0) / 2;
  at::NoGradGuard no_grad;
  for (bool all : {false, true}) {
    const Guidance guidance{scale, all ? GuidanceChannels::All : GuidanceChannels::DiT, y[half].item<int64_t>()};
    const ModelFn model = classifier_free_guidance(forward_of(tiny_dit()), y.narrow(0, 0, half), guidance);
    const at::Tensor ours = model(x.narrow(0, 0, half), t.narrow(0, 0, half));
    const at::Tensor theirs = tiny_dit()->forward_with_cfg(x, t, y, scale, all).narrow(0, 0, half);
    EXPECT_LE(rel_error(ours, theirs), 1e-6) << (all ? "all channels" : "DiT's 3 channels");
    if (!all) {
      EXPECT_LE(rel_error(ours, io.tensor("cfg_out").narrow(0, 0, half)), 1e-5);
    }
  }
}

struct Replay {
  const char* prefix;     // in sampling.safetensors
  const char* sampler;    // make_sampler name
  const char* respacing;  // DiT's num_sampling_steps
  double scale;           // guidance
  bool lit;               // the LiT instead of the DiT
  const char* labels;     // the run whose labels it uses (the LiT run shares the DiT's)

  friend void PrintTo(const Replay& r, std::ostream* os) { *os << r.prefix; }
};

class ReferenceSampling : public ::testing::TestWithParam<Replay> {};

TEST_P(ReferenceSampling, ReplayMatchesTheReferenceSamples) {
  const Replay r = GetParam();
  const auto file = SafetensorsFile::open(fixture("diffusion/sampling.safetensors"));
  const std::string p = std::string(r.prefix) + ".";
  const at::Tensor z = file.tensor("z");
  const int64_t batch = z.size(0);
  const at::Tensor labels = file.tensor(std::string(r.labels) + ".labels");
  // Under guidance the reference's labels are the doubled batch's: the labels, then the null class.
  const int64_t null_class = labels.size(0) == 2 * batch ? labels[batch].item<int64_t>() : 10;
  const ModelFn model =
      classifier_free_guidance(forward_of(r.lit ? tiny_lit() : tiny_dit()), labels.narrow(0, 0, batch),
                               {r.scale, GuidanceChannels::DiT, null_class});
  const GaussianDiffusion diffusion = GaussianDiffusion::create(r.respacing);

  at::Tensor sample;
  if (file.contains(p + "noise")) {
    RecordedNoise noise(file.tensor(p + "noise"));
    sample = make_sampler(r.sampler)->sample(model, diffusion, z, noise);
    EXPECT_EQ(noise.drawn(), diffusion.num_timesteps() - 1);  // none at the last step
  } else {
    NoNoise noise;
    sample = make_sampler(r.sampler)->sample(model, diffusion, z, noise);
  }
  EXPECT_LE(rel_error(sample, file.tensor(p + "sample")), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ReferenceSampling,
                         ::testing::Values(Replay{"ddpm50_cfg4", "ddpm", "50", 4.0, false, "ddpm50_cfg4"},
                                           Replay{"lit_ddpm50_cfg4", "ddpm", "50", 4.0, true, "ddpm50_cfg4"},
                                           Replay{"ddpm50", "ddpm", "50", 1.0, false, "ddpm50"},
                                           Replay{"ddim25", "ddim", "25", 1.0, false, "ddim25"}),
                         [](const auto& info) { return std::string(info.param.prefix); });

TEST(ReferenceLiTSampling, Ddim25MatchesTheReference) {
  const auto file = SafetensorsFile::open(fixture("lit/lit_ddim25.safetensors"));
  const at::Tensor z = file.tensor("z");
  const ModelFn model = classifier_free_guidance(forward_of(tiny_lit()), file.tensor("labels"), {});
  NoNoise noise;
  const at::Tensor sample = DDIMSampler().sample(model, GaussianDiffusion::create("25"), z, noise);
  EXPECT_LE(rel_error(sample, file.tensor("sample")), 1e-5);
}

}  // namespace
}  // namespace lit
