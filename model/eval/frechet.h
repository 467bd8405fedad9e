// The numbers of generative-model evaluation, computed from feature vectors (model/feature_extractor.h):
//   - feature statistics mu, sigma in float64 with NumPy's semantics (np.mean, np.cov(rowvar=False), N - 1),
//     saved and loaded as `.npz` (mu, sigma) the way pytorch-fid and clean-fid read and write them;
//   - the Fréchet distance between two statistics, in float64;
//   - the Inception Score from classifier logits;
//   - improved precision and recall (Kynkäänniemi et al. 2019) as the ADM evaluator defines them.
// All pure functions of tensors: no files beyond the statistics, no printing.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lit {

struct FeatureStatistics {
  at::Tensor mu;       // (D,) float64, CPU
  at::Tensor sigma;    // (D, D) float64, CPU
  int64_t count = 0;   // samples they were computed from; 0 when unknown (read from a file)
  std::string source;  // where they came from (a path), for messages
};

// features (N, D), any float dtype and device -> mean and covariance (N - 1 normalisation) in float64.
// Throws lit::Error for fewer than 2 samples.
FeatureStatistics compute_statistics(const at::Tensor& features, const std::string& source = "");

// Writes {mu, sigma} (float64) as np.savez (or np.savez_compressed) would; atomic.
void save_statistics(const std::string& path, const FeatureStatistics& stats, bool compressed = false);
// Reads mu, sigma from an .npz (other arrays, e.g. an ADM reference batch's arr_0, are ignored). Throws
// lit::Error naming the file when they are missing or misshapen.
FeatureStatistics load_statistics(const std::string& path);
// The same from arrays already read from `path` (read_npz), so a large ADM batch is not read twice.
FeatureStatistics statistics_from_arrays(const std::vector<std::pair<std::string, at::Tensor>>& arrays,
                                         const std::string& path);

struct FrechetResult {
  double distance = 0;
  std::string warning;  // non-empty when the number is unreliable (fewer samples than feature dimensions)
};

// ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2), in float64. The trace of the matrix square root is
// computed as tr(sqrt(sqrt(S1) S2 sqrt(S1))) from two symmetric eigen-decompositions, with eigenvalues below
// the rounding level (tiny negative ones included, on near-singular covariances) set to zero: it equals pytorch-fid's
// scipy.linalg.sqrtm(S1 S2) on well-conditioned input and, unlike a general sqrtm, never turns complex.
// Throws lit::Error naming both sources when the feature dimensions differ.
FrechetResult frechet_distance(const FeatureStatistics& a, const FeatureStatistics& b);

struct InceptionScore {
  double mean = 0, std = 0;
  int64_t splits = 0;
};

// exp(E_x KL(p(y|x) || p(y))) per split, from logits (N, C): p(y|x) = softmax over all C logits (all 1008 for
// the Inception network, as improved-gan and the ADM evaluator do), in float64. The N samples are cut into
// `splits` consecutive parts of N / splits (10 splits of 5,000 for a 50K run: ADM's split size); mean and
// standard deviation over the splits. Throws lit::Error when N < splits.
InceptionScore inception_score(const at::Tensor& logits, int64_t splits = 10);

struct PrecisionRecall {
  double precision = 0, recall = 0;
  int64_t k = 3;
};

// Improved precision and recall as the ADM evaluator (guided-diffusion evaluations/evaluator.py) computes
// them: each set's manifold is the union of balls around its points whose radius is the distance to the
// point's k-th nearest neighbour (the point itself not counted); precision = fraction of samples inside the
// reference manifold, recall = fraction of reference points inside the sample manifold. Squared Euclidean
// distances in float32, computed in blocks of `block` rows so memory stays bounded; a point is inside when
// its distance is <= the radius. (ADM computes the distances in float16 first when finite; float32 differs
// from it only in rounding.) Runs on the features' device.
PrecisionRecall precision_recall(const at::Tensor& reference, const at::Tensor& samples, int64_t k = 3,
                                 int64_t block = 1024);

// The k-th nearest-neighbour squared distance of every row of `features` to the others (the radii above).
at::Tensor manifold_radii(const at::Tensor& features, int64_t k = 3, int64_t block = 1024);

}  // namespace lit
