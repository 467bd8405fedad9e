// Statistics, Fréchet distance, Inception Score and precision/recall against pytorch-fid's numbers
// (fixtures/fid) and against cases with known answers.
#include <gtest/gtest.h>

#include <cmath>

#include "model/eval/fid_inputs.h"
#include "model/eval/frechet.h"
#include "tests/test_util.h"
#include "common/error.h"
#include "weights/npy.h"
#include "weights/safetensors.h"

namespace lit {
namespace {

using test::fixture;
using test::rel_error;
using test::temp_path;

struct FrechetFixture {
  at::Tensor a, b;
  double fd;
};

FrechetFixture frechet_fixture() {
  const auto f = SafetensorsFile::open(fixture("fid/frechet.safetensors"));
  return {f.tensor("feats_a"), f.tensor("feats_b"), f.tensor("fd").item<double>()};
}

TEST(Frechet, MatchesPytorchFid) {
  const auto fx = frechet_fixture();
  ASSERT_EQ(fx.a.scalar_type(), at::kDouble);
  const FrechetResult r = frechet_distance(compute_statistics(fx.a), compute_statistics(fx.b));
  EXPECT_NEAR(r.distance, fx.fd, 1e-6 * std::abs(fx.fd));
  EXPECT_TRUE(r.warning.empty()) << r.warning;  // 700 and 900 samples for 64 dimensions
}

TEST(Frechet, StatisticsFollowNumpyAndReadBothFileLayouts) {
  const auto fx = frechet_fixture();
  const FeatureStatistics a = load_statistics(fixture("fid/stats_a.npz"));             // np.savez
  const FeatureStatistics b = load_statistics(fixture("fid/stats_b_compressed.npz"));  // np.savez_compressed
  const FeatureStatistics ca = compute_statistics(fx.a), cb = compute_statistics(fx.b);
  EXPECT_EQ(ca.mu.scalar_type(), at::kDouble);
  EXPECT_EQ(ca.count, 700);
  EXPECT_LE(rel_error(ca.mu, a.mu), 1e-12);
  EXPECT_LE(rel_error(ca.sigma, a.sigma), 1e-12);  // np.cov(rowvar=False): N - 1
  EXPECT_LE(rel_error(cb.sigma, b.sigma), 1e-12);
  EXPECT_NEAR(frechet_distance(a, b).distance, fx.fd, 1e-6 * std::abs(fx.fd));

  // What we write, we (and NumPy's layout) read back exactly.
  for (bool compressed : {false, true}) {
    const std::string path = temp_path(compressed ? "c.npz" : "p.npz");
    save_statistics(path, ca, compressed);
    const FeatureStatistics back = load_statistics(path);
    EXPECT_TRUE(at::equal(back.mu, ca.mu));
    EXPECT_TRUE(at::equal(back.sigma, ca.sigma));
    std::remove(path.c_str());
  }
}

TEST(Frechet, AdmReferenceBatchBringsItsOwnStatistics) {
  const FidInput in = open_fid_input(fixture("fid/ref_batch_adm_style.npz"));
  EXPECT_EQ(in.kind, FidInputKind::ImageBatch);
  EXPECT_GT(in.num_images(), 0);
  EXPECT_EQ(in.pixels.scalar_type(), at::kByte);
  EXPECT_EQ(in.pixels.size(3), 3);
  ASSERT_TRUE(in.stats.has_value());
  EXPECT_EQ(in.stats->sigma.size(0), in.stats->mu.size(0));
  EXPECT_EQ(in.stats->mu.scalar_type(), at::kDouble);
  // Also readable as a plain statistics file.
  EXPECT_TRUE(at::equal(load_statistics(fixture("fid/ref_batch_adm_style.npz")).mu, in.stats->mu));
}

TEST(Frechet, IdenticalStatisticsAreZeroAndNearSingularIsFinite) {
  const auto fx = frechet_fixture();
  const FeatureStatistics a = compute_statistics(fx.a);
  EXPECT_NEAR(frechet_distance(a, a).distance, 0.0, 1e-8);
  // 10 samples in 64 dimensions: rank-9 covariances. The distance stays finite and non-negative, with a warning.
  const FeatureStatistics s1 = compute_statistics(fx.a.slice(0, 0, 10), "few.npz");
  const FeatureStatistics s2 = compute_statistics(fx.b.slice(0, 0, 10));
  const FrechetResult r = frechet_distance(s1, s2);
  EXPECT_TRUE(std::isfinite(r.distance));
  EXPECT_GE(r.distance, 0.0);
  EXPECT_NE(r.warning.find("fewer than the 64 feature dimensions"), std::string::npos) << r.warning;
  EXPECT_NEAR(frechet_distance(s1, s1).distance, 0.0, 1e-8);
}

TEST(Frechet, MismatchedDimensionsNameBothSources) {
  FeatureStatistics a = load_statistics(fixture("fid/stats_a.npz"));
  FeatureStatistics b;
  b.mu = at::zeros({2048}, at::kDouble);
  b.sigma = at::eye(2048, at::kDouble);
  b.source = "inception_stats.npz";
  try {
    frechet_distance(a, b);
    FAIL() << "expected lit::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("64"), std::string::npos) << msg;
    EXPECT_NE(msg.find("2048"), std::string::npos) << msg;
    EXPECT_NE(msg.find("stats_a.npz"), std::string::npos) << msg;
    EXPECT_NE(msg.find("inception_stats.npz"), std::string::npos) << msg;
  }
}

TEST(Frechet, StatisticsFileErrors) {
  const std::string path = temp_path("not_stats.npz");
  write_npz(path, {{"x", at::zeros({3})}});
  EXPECT_THROW(load_statistics(path), Error);
  write_npz(path, {{"mu", at::zeros({3}, at::kDouble)}, {"sigma", at::zeros({4, 4}, at::kDouble)}});
  EXPECT_THROW(load_statistics(path), Error);
  std::remove(path.c_str());
  EXPECT_THROW(compute_statistics(at::zeros({1, 8})), Error);
}

// Known answers: identical predictions give IS 1; each split holding C equally frequent confident classes gives C.
TEST(InceptionScore, KnownAnswers) {
  const InceptionScore flat = inception_score(at::zeros({40, 1008}), 10);
  EXPECT_NEAR(flat.mean, 1.0, 1e-12);
  EXPECT_NEAR(flat.std, 0.0, 1e-12);
  EXPECT_EQ(flat.splits, 10);

  at::Tensor logits = at::full({40, 8}, -1000.0, at::kDouble);
  for (int64_t i = 0; i < 40; ++i) logits[i][i % 4] = 1000.0;  // each split of 4 sees classes 0..3 once
  const InceptionScore sharp = inception_score(logits, 10);
  EXPECT_NEAR(sharp.mean, 4.0, 1e-9);
  EXPECT_THROW(inception_score(at::zeros({5, 10}), 10), Error);
}

TEST(PrecisionRecall, KnownAnswers) {
  at::manual_seed(0);
  const at::Tensor ref = at::randn({300, 16});
  // The same set: every point lies in its own ball.
  PrecisionRecall same = precision_recall(ref, ref.clone(), 3, 64);
  EXPECT_DOUBLE_EQ(same.precision, 1.0);
  EXPECT_DOUBLE_EQ(same.recall, 1.0);
  // Samples far away: none inside the reference manifold, and none of the reference inside theirs.
  PrecisionRecall far = precision_recall(ref, at::randn({200, 16}) + 100, 3, 64);
  EXPECT_DOUBLE_EQ(far.precision, 0.0);
  EXPECT_DOUBLE_EQ(far.recall, 0.0);
  // Half the samples from the reference distribution, half far: precision about one half.
  const at::Tensor mixed = at::cat({ref.slice(0, 0, 100), at::randn({100, 16}) + 100});
  EXPECT_NEAR(precision_recall(ref, mixed, 3, 64).precision, 0.5, 1e-12);
  // Block size does not change the answer.
  const at::Tensor other = at::randn({250, 16}) * 1.3;
  const PrecisionRecall a = precision_recall(ref, other, 3, 1000), b = precision_recall(ref, other, 3, 37);
  EXPECT_EQ(a.precision, b.precision);
  EXPECT_EQ(a.recall, b.recall);
}

TEST(PrecisionRecall, RadiiAreTheKthNeighbourExcludingSelf) {
  // Points on a line at 0, 1, 3, 6, 10: squared distances to the 3rd nearest other point.
  const at::Tensor x = at::tensor({0.0f, 1.0f, 3.0f, 6.0f, 10.0f}).unsqueeze(1);
  const at::Tensor r = manifold_radii(x, 3, 2);
  EXPECT_TRUE(at::allclose(r, at::tensor({36.0f, 25.0f, 9.0f, 25.0f, 81.0f})));
}

}  // namespace
}  // namespace lit
