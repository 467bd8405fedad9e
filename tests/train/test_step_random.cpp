// StepRandom: the look-ahead draws equal in-line draws from the run's generator, and its state is the one a
// generator without the look-ahead would hold (what checkpoints save and resumes restore).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "tools/train/step_random.h"
#include "tools/train/train_data.h"

namespace lit::train {
namespace {

constexpr int64_t kTimesteps = 1000, kBatch = 6;
const std::vector<int64_t> kShape = {3, 4, 4};

// What the trainers drew in line before the look-ahead: timesteps, noise, dropout, for the global batch.
StepDraw draw_in_line(at::Generator& g) {
  StepDraw d;
  d.t = at::randint(0, kTimesteps, {kBatch}, g, at::kLong);
  d.noise = at::randn({kBatch, 3, 4, 4}, g, at::kFloat);
  d.drop = at::rand({kBatch}, g, at::kFloat) < 0.5;
  return d;
}

void expect_equal(const StepDraw& a, const StepDraw& b) {
  EXPECT_TRUE(at::equal(a.t, b.t));
  EXPECT_TRUE(at::equal(a.noise, b.noise));
  EXPECT_TRUE(at::equal(a.drop, b.drop));
}

TEST(StepRandom, DrawsWhatTheRunGeneratorDrawsInLine) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(mix_seed(7, 0));
  StepRandom r(7, kTimesteps, kShape, kBatch, 0.5);
  for (int step = 0; step < 4; ++step) {
    const StepDraw d = r.next();
    expect_equal(d, draw_in_line(g));
    EXPECT_TRUE(at::equal(r.state(), g.get_state())) << "step " << step;
  }
}

TEST(StepRandom, RanksKeepTheirSliceOfTheGlobalDraws) {
  StepRandom whole(3, kTimesteps, kShape, kBatch, 0.5), rank1(3, kTimesteps, kShape, kBatch, 0.5, 1, 2);
  for (int step = 0; step < 2; ++step) {
    const StepDraw w = whole.next(), r = rank1.next();
    ASSERT_EQ(r.t.size(0), kBatch / 2);
    expect_equal(r, {w.t.narrow(0, 3, 3), w.noise.narrow(0, 3, 3), w.drop.narrow(0, 3, 3)});
  }
}

TEST(StepRandom, ResumesFromASavedState) {
  StepRandom a(11, kTimesteps, kShape, kBatch, 0.5);
  a.next();
  a.next();
  const at::Tensor saved = a.state();
  const StepDraw third = a.next(), fourth = a.next();
  StepRandom b(11, kTimesteps, kShape, kBatch, 0.5);
  b.next();  // a draw under way is dropped by set_state
  b.set_state(saved);
  expect_equal(b.next(), third);
  expect_equal(b.next(), fourth);
}

TEST(StepRandom, RefusesABatchThatDoesNotSplitOverTheRanks) {
  StepRandom r(1, kTimesteps, kShape, 5, 0.1, 0, 2);
  EXPECT_THROW(r.next(), std::exception);
}

}  // namespace
}  // namespace lit::train
