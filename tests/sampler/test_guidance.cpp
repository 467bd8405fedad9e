#include <gtest/gtest.h>

#include "sampler/guidance.h"
#include "tests/test_util.h"
#include "common/error.h"

namespace lit {
namespace {

using test::rel_error;

// A stand-in class-conditional network with learned sigma: every output channel depends on x, t and y,
// differently per channel, and the null class is just another label.
at::Tensor fake_forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
  const int64_t c = x.size(1);
  const at::Tensor ty = (t.to(at::kFloat) * 0.001 + y.to(at::kFloat) * 0.37).view({-1, 1, 1, 1});
  const at::Tensor channel = at::arange(2 * c, x.options()).view({1, -1, 1, 1});
  return at::sin(at::cat({x, x * x}, 1) * (1 + channel * 0.1) + ty * (1 + channel));
}

// DiT's forward_with_cfg transcribed: x is the doubled batch, only its first half is used, guidance on the
// first `guided` channels, the rest kept per half; both halves of the result carry the guided eps.
at::Tensor dit_forward_with_cfg(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, double scale,
                                int64_t guided) {
  const at::Tensor half = x.narrow(0, 0, x.size(0) / 2);
  const at::Tensor out = fake_forward(at::cat({half, half}), t, y);
  const at::Tensor eps = out.narrow(1, 0, guided), rest = out.narrow(1, guided, out.size(1) - guided);
  const auto halves = at::split(eps, eps.size(0) / 2, 0);
  const at::Tensor half_eps = halves[1] + scale * (halves[0] - halves[1]);
  return at::cat({at::cat({half_eps, half_eps}), rest}, 1);
}

class Guidance4 : public ::testing::Test {
 protected:
  at::Tensor x = at::randn({3, 4, 8, 8});
  at::Tensor t = at::tensor(std::vector<int64_t>{999, 500, 3});
  at::Tensor labels = at::tensor(std::vector<int64_t>{0, 7, 3});
  int64_t null_class = 10;
  at::Tensor doubled_labels = at::cat({labels, at::full({3}, 10, at::kLong)});
};

TEST_F(Guidance4, DiTDefaultGuidesTheFirstThreeChannelsAsForwardWithCfg) {
  const ModelFn model = classifier_free_guidance(fake_forward, labels, {4.0, GuidanceChannels::DiT, null_class});
  const at::Tensor ours = model(x, t);
  const at::Tensor dit = dit_forward_with_cfg(at::cat({x, x}), at::cat({t, t}), doubled_labels, 4.0, 3);
  ASSERT_EQ(ours.sizes(), (std::vector<int64_t>{3, 8, 8, 8}));
  EXPECT_TRUE(at::equal(ours, dit.narrow(0, 0, 3)));
  // Channel 3 (the 4th eps channel) and the variance channels are the conditional model's own.
  const at::Tensor cond = fake_forward(x, t, labels);
  EXPECT_TRUE(at::equal(ours.narrow(1, 3, 5), cond.narrow(1, 3, 5)));
  EXPECT_FALSE(at::equal(ours.narrow(1, 0, 3), cond.narrow(1, 0, 3)));
}

TEST_F(Guidance4, AllChannelFormGuidesEveryEpsChannelButNoVariance) {
  const ModelFn model = classifier_free_guidance(fake_forward, labels, {4.0, GuidanceChannels::All, null_class});
  const at::Tensor ours = model(x, t);
  const at::Tensor dit = dit_forward_with_cfg(at::cat({x, x}), at::cat({t, t}), doubled_labels, 4.0, 4);
  EXPECT_TRUE(at::equal(ours, dit.narrow(0, 0, 3)));
  const at::Tensor cond = fake_forward(x, t, labels), uncond = fake_forward(x, t, at::full({3}, 10, at::kLong));
  EXPECT_LE(rel_error(ours.narrow(1, 0, 4), uncond.narrow(1, 0, 4) + 4.0 * (cond - uncond).narrow(1, 0, 4)), 1e-6);
  EXPECT_TRUE(at::equal(ours.narrow(1, 4, 4), cond.narrow(1, 4, 4)));
}

TEST_F(Guidance4, ScaleOneSkipsTheUnconditionalHalf) {
  int64_t seen_batch = 0;
  const ClassConditionalFn counting = [&](const at::Tensor& xx, const at::Tensor& tt, const at::Tensor& yy) {
    seen_batch = xx.size(0);
    return fake_forward(xx, tt, yy);
  };
  const at::Tensor out = classifier_free_guidance(counting, labels, {1.0, GuidanceChannels::DiT, null_class})(x, t);
  EXPECT_EQ(seen_batch, 3);
  EXPECT_TRUE(at::equal(out, fake_forward(x, t, labels)));
  classifier_free_guidance(counting, labels, {1.5, GuidanceChannels::DiT, null_class})(x, t);
  EXPECT_EQ(seen_batch, 6);
}

TEST_F(Guidance4, AnyScaleAndFewChannels) {
  // Scale 0 is the unconditional model; a 1-channel model (C < 3) has only its one eps channel guided.
  const at::Tensor uncond = fake_forward(x, t, at::full({3}, 10, at::kLong));
  const at::Tensor zero =
      classifier_free_guidance(fake_forward, labels, {0.0, GuidanceChannels::DiT, null_class})(x, t);
  EXPECT_LE(rel_error(zero.narrow(1, 0, 3), uncond.narrow(1, 0, 3)), 1e-6);
  const at::Tensor x1 = x.narrow(1, 0, 1).contiguous();
  const at::Tensor one =
      classifier_free_guidance(fake_forward, labels, {2.5, GuidanceChannels::DiT, null_class})(x1, t);
  ASSERT_EQ(one.size(1), 2);
  EXPECT_TRUE(at::equal(one.narrow(1, 1, 1), fake_forward(x1, t, labels).narrow(1, 1, 1)));
}

TEST_F(Guidance4, LabelCountMustMatchTheBatch) {
  const ModelFn model = classifier_free_guidance(fake_forward, labels, {4.0, GuidanceChannels::DiT, null_class});
  EXPECT_THROW(model(at::randn({2, 4, 8, 8}), t.narrow(0, 0, 2)), Error);
  EXPECT_THROW(classifier_free_guidance(fake_forward, labels.to(at::kInt), {}), Error);
  EXPECT_THROW(combine_guided_halves(at::randn({3, 8, 2, 2}), 4, 2.0, GuidanceChannels::DiT), Error);
}

}  // namespace
}  // namespace lit
