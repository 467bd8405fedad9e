// What both trainers share (tools/train/training_run.h): the learning-rate schedule, and a trainer following it.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "tests/train/train_test_util.h"
#include "tools/train/trainer.h"
#include "tools/train/training_run.h"

namespace lit::test {
namespace {

using train::LrSchedule;
using train::scheduled_lr;

TEST(LrSchedule, WarmsUpThenHoldsOrDecaysToTheMinimum) {
  const double lr = 1e-3, min_lr = 1e-5;
  for (LrSchedule s : {LrSchedule::Constant, LrSchedule::Linear, LrSchedule::Cosine}) {
    // The warm-up every schedule shares: step i (0-based) runs at lr * (i + 1) / warmup.
    EXPECT_DOUBLE_EQ(scheduled_lr(s, lr, min_lr, 10, 110, 0), lr / 10);
    EXPECT_DOUBLE_EQ(scheduled_lr(s, lr, min_lr, 10, 110, 9), lr);
    EXPECT_DOUBLE_EQ(scheduled_lr(s, lr, min_lr, 10, 110, 10), lr);  // the first step after it: the full rate
  }
  EXPECT_DOUBLE_EQ(scheduled_lr(LrSchedule::Constant, lr, min_lr, 10, 110, 109), lr);
  // Half-way through the decay both schedules are at the mean of the two rates; at max_steps and past it, min_lr.
  for (LrSchedule s : {LrSchedule::Linear, LrSchedule::Cosine}) {
    EXPECT_NEAR(scheduled_lr(s, lr, min_lr, 10, 110, 60), (lr + min_lr) / 2, 1e-15);
    EXPECT_DOUBLE_EQ(scheduled_lr(s, lr, min_lr, 10, 110, 110), min_lr);
    EXPECT_DOUBLE_EQ(scheduled_lr(s, lr, min_lr, 10, 110, 500), min_lr);
  }
  // A quarter of the way: the line has lost a quarter, the cosine less.
  EXPECT_NEAR(scheduled_lr(LrSchedule::Linear, lr, 0, 0, 100, 25), 0.75 * lr, 1e-15);
  EXPECT_NEAR(scheduled_lr(LrSchedule::Cosine, lr, 0, 0, 100, 25), lr * 0.5 * (1 + std::cos(M_PI / 4)), 1e-15);
  // No warm-up, and a run no longer than its warm-up, stay finite.
  EXPECT_DOUBLE_EQ(scheduled_lr(LrSchedule::Cosine, lr, min_lr, 0, 100, 0), lr);
  EXPECT_TRUE(std::isfinite(scheduled_lr(LrSchedule::Linear, lr, min_lr, 10, 5, 7)));
}

TEST(LrSchedule, NamesReadBackAndOthersAreRefused) {
  for (LrSchedule s : {LrSchedule::Constant, LrSchedule::Linear, LrSchedule::Cosine})
    EXPECT_EQ(train::parse_lr_schedule(train::lr_schedule_name(s)), s);
  EXPECT_NE(error_of([] { train::parse_lr_schedule("step"); }).find("--lr-schedule step"), std::string::npos);
}

TEST(LrSchedule, TheTrainerStepsAtTheScheduledRates) {
  auto data = train::make_synthetic_data({4, 8, 8}, 10, 16);
  train::TrainOptions o;
  o.batch_size = 4;
  o.max_steps = 6;
  o.lr = 1e-3;
  o.min_lr = 1e-4;
  o.warmup_steps = 2;
  o.lr_schedule = LrSchedule::Linear;
  train::Trainer trainer(fresh_model(tiny_lit_config(), 3), nullptr, data, o);
  for (int64_t step = 0; step < o.max_steps; ++step)
    EXPECT_DOUBLE_EQ(trainer.step().lr, scheduled_lr(LrSchedule::Linear, 1e-3, 1e-4, 2, 6, step)) << step;
}

}  // namespace
}  // namespace lit::test
