#include "model/eval/frechet.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "common/error.h"
#include "common/format.h"
#include "weights/npy.h"

namespace lit {
namespace {

std::string name_of(const FeatureStatistics& s, const char* fallback) {
  return s.source.empty() ? std::string(fallback) : "'" + s.source + "'";
}

// Eigenvalues of a positive semi-definite matrix below its rounding level (size x machine epsilon x the
// largest, NumPy's matrix_rank tolerance) are zero in exact arithmetic: set them to zero, negative ones
// included. Otherwise their square roots (~1e-8 of the largest each) add up to a visible bias on the
// near-singular covariances of small sample sets.
at::Tensor clean_eigenvalues(const at::Tensor& lambda) {
  const double largest = lambda.abs().max().item<double>();
  const double tol = static_cast<double>(lambda.size(0)) * std::numeric_limits<double>::epsilon() * largest;
  return at::where(lambda > tol, lambda, at::zeros_like(lambda));
}

// Symmetric square root V diag(sqrt(lambda)) V^T of a symmetric positive semi-definite matrix.
at::Tensor symmetric_sqrt(const at::Tensor& m) {
  auto [lambda, v] = at::linalg_eigh(m);
  return at::matmul(v * at::sqrt(clean_eigenvalues(lambda)).unsqueeze(0), v.t());
}

// Squared Euclidean distances (rows of a) x (rows of b), float32, clamped at zero like ADM's.
at::Tensor pairwise_squared_distances(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor na = (a * a).sum(1, /*keepdim=*/true);
  const at::Tensor nb = (b * b).sum(1).unsqueeze(0);
  return at::clamp_min(na - 2 * at::matmul(a, b.t()) + nb, 0);
}

// Fraction of rows of `points` within radius of at least one row of `centres`.
double fraction_inside(const at::Tensor& points, const at::Tensor& centres, const at::Tensor& radii, int64_t block) {
  int64_t inside = 0;
  for (int64_t i = 0; i < points.size(0); i += block) {
    const at::Tensor rows = points.slice(0, i, std::min(i + block, points.size(0)));
    at::Tensor any = at::zeros({rows.size(0)}, rows.options().dtype(at::kBool));
    for (int64_t j = 0; j < centres.size(0); j += block) {
      const int64_t j1 = std::min(j + block, centres.size(0));
      const at::Tensor d = pairwise_squared_distances(rows, centres.slice(0, j, j1));
      any = any.logical_or((d <= radii.slice(0, j, j1).unsqueeze(0)).any(1));
    }
    inside += any.sum().item<int64_t>();
  }
  return static_cast<double>(inside) / static_cast<double>(points.size(0));
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// Statistics that no feature set can produce give a NaN or a meaningless number: refuse them. A covariance is
// finite, symmetric and positive semi-definite; the tolerances allow the rounding of the dtype it was saved in
// (10 x dimension x machine epsilon, relative to the largest entry or eigenvalue).
void check_statistics(const FeatureStatistics& s, const std::string& path, double eps) {
  if (!at::isfinite(s.mu).all().item<bool>()) throw Error(path + ": mu holds NaN or infinite values");
  if (!at::isfinite(s.sigma).all().item<bool>()) throw Error(path + ": sigma holds NaN or infinite values");
  const double d = static_cast<double>(std::max<int64_t>(s.mu.size(0), 1));
  const double scale = s.sigma.numel() ? s.sigma.abs().max().item<double>() : 0.0;
  const double asymmetry = s.sigma.numel() ? (s.sigma - s.sigma.t()).abs().max().item<double>() : 0.0;
  if (asymmetry > 10 * d * eps * scale)
    throw Error(path + ": sigma is not symmetric (entries differ from their transpose by up to " +
                number_text(asymmetry) + "), not a covariance matrix");
  if (s.sigma.numel() == 0) return;
  const at::Tensor lambda = at::linalg_eigvalsh((s.sigma + s.sigma.t()) / 2);
  const double smallest = lambda.min().item<double>(), largest = lambda.abs().max().item<double>();
  if (smallest < -10 * d * eps * largest)
    throw Error(path + ": sigma is not positive semi-definite (eigenvalue " + number_text(smallest) +
                ", the largest is " + number_text(largest) + "), not a covariance matrix");
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------------------
FeatureStatistics compute_statistics(const at::Tensor& features, const std::string& source) {
  if (features.dim() != 2)
    throw Error("feature statistics: expected features (N, D), got " + shape_string(features.sizes()));
  const int64_t n = features.size(0);
  if (n < 2)
    throw Error("feature statistics" + (source.empty() ? std::string() : " of '" + source + "'") +
                ": need at least 2 samples, got " + std::to_string(n));
  const at::Tensor x = features.to(at::kCPU, at::kDouble);
  FeatureStatistics s;
  s.mu = x.mean(0);
  const at::Tensor centred = x - s.mu.unsqueeze(0);
  s.sigma = at::matmul(centred.t(), centred) / static_cast<double>(n - 1);  // np.cov(rowvar=False): N - 1
  s.count = n;
  s.source = source;
  return s;
}

void save_statistics(const std::string& path, const FeatureStatistics& stats, bool compressed) {
  write_npz(path,
            {{"mu", stats.mu.to(at::kCPU, at::kDouble).contiguous()},
             {"sigma", stats.sigma.to(at::kCPU, at::kDouble).contiguous()}},
            compressed);
}

FeatureStatistics load_statistics(const std::string& path) {
  return statistics_from_arrays(read_npz(path), path);
}

FeatureStatistics statistics_from_arrays(const std::vector<std::pair<std::string, at::Tensor>>& arrays,
                                         const std::string& path) {
  FeatureStatistics s;
  for (const auto& [name, array] : arrays) {
    if (name == "mu") s.mu = array;
    if (name == "sigma") s.sigma = array;
  }
  if (!s.mu.defined() || !s.sigma.defined())
    throw Error(path + ": not a statistics file: expected arrays 'mu' and 'sigma'");
  if (s.mu.dim() != 1 || s.sigma.dim() != 2 || s.sigma.size(0) != s.mu.size(0) || s.sigma.size(1) != s.mu.size(0))
    throw Error(path + ": mu " + shape_string(s.mu.sizes()) + " and sigma " + shape_string(s.sigma.sizes()) +
                " do not form statistics of one feature dimension");
  if (!c10::isFloatingType(s.mu.scalar_type()) || !c10::isFloatingType(s.sigma.scalar_type()))
    throw Error(path + ": mu and sigma must be floating-point arrays");
  const double eps = s.sigma.scalar_type() == at::kDouble ? std::numeric_limits<double>::epsilon()
                                                          : std::numeric_limits<float>::epsilon();
  s.mu = s.mu.to(at::kDouble);
  s.sigma = s.sigma.to(at::kDouble);
  check_statistics(s, path, eps);
  s.source = path;
  return s;
}

// ---------------------------------------------------------------------------------------------------------
// Fréchet distance
// ---------------------------------------------------------------------------------------------------------
FrechetResult frechet_distance(const FeatureStatistics& a, const FeatureStatistics& b) {
  const int64_t d = a.mu.size(0);
  if (b.mu.size(0) != d)
    throw Error("Fréchet distance: feature dimensions differ: " + std::to_string(d) + " in " + name_of(a, "the first") +
                " vs " + std::to_string(b.mu.size(0)) + " in " + name_of(b, "the second") +
                " (statistics from different feature networks?)");
  const at::Tensor mu1 = a.mu.to(at::kCPU, at::kDouble), mu2 = b.mu.to(at::kCPU, at::kDouble);
  const at::Tensor s1 = a.sigma.to(at::kCPU, at::kDouble), s2 = b.sigma.to(at::kCPU, at::kDouble);

  // tr((S1 S2)^1/2) = tr((sqrt(S1) S2 sqrt(S1))^1/2): the same eigenvalues, but of a symmetric matrix.
  const at::Tensor r = symmetric_sqrt(s1);
  at::Tensor m = at::matmul(at::matmul(r, s2), r);
  m = (m + m.t()) / 2;  // rounding leaves it a hair off symmetric
  const double tr_covmean = at::sqrt(clean_eigenvalues(at::linalg_eigvalsh(m))).sum().item<double>();

  const at::Tensor diff = mu1 - mu2;
  FrechetResult out;
  out.distance = diff.dot(diff).item<double>() + s1.trace().item<double>() + s2.trace().item<double>() - 2 * tr_covmean;
  if (!std::isfinite(out.distance))
    throw Error("Fréchet distance of " + name_of(a, "the first") + " and " + name_of(b, "the second") +
                " is not finite (statistics with NaN or infinite values?)");
  for (const FeatureStatistics* s : {&a, &b}) {
    if (s->count > 0 && s->count < d && out.warning.empty())
      out.warning = "statistics of " + name_of(*s, "a set") + " come from " + std::to_string(s->count) +
                    " samples, fewer than the " + std::to_string(d) +
                    " feature dimensions: the covariance is singular and the distance is biased (use at least " +
                    std::to_string(d) + " samples; FID is normally reported on 50,000)";
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Inception Score
// ---------------------------------------------------------------------------------------------------------
InceptionScore inception_score(const at::Tensor& logits, int64_t splits) {
  if (logits.dim() != 2)
    throw Error("Inception Score: expected logits (N, classes), got " + shape_string(logits.sizes()));
  const int64_t n = logits.size(0);
  if (splits < 1 || n < splits)
    throw Error("Inception Score: " + std::to_string(n) + " samples cannot be cut into " + std::to_string(splits) +
                " splits (need at least one sample per split)");
  const at::Tensor p = at::softmax(logits.to(at::kCPU, at::kDouble), 1);
  const at::Tensor log_p = at::log_softmax(logits.to(at::kCPU, at::kDouble), 1);
  std::vector<double> scores;
  for (int64_t i = 0; i < splits; ++i) {
    const int64_t lo = i * n / splits, hi = (i + 1) * n / splits;
    const at::Tensor part = p.slice(0, lo, hi), log_part = log_p.slice(0, lo, hi);
    const at::Tensor log_marginal = at::log(part.mean(0, /*keepdim=*/true));
    // p log(p / marginal) with 0 log 0 = 0: a class no image of the split predicts adds nothing (NumPy would
    // give NaN there; real logits never underflow to an exact 0, so the numbers are otherwise ADM's).
    const at::Tensor terms = part * (log_part - log_marginal);
    const double kl = at::where(part > 0, terms, at::zeros_like(terms)).sum(1).mean().item<double>();
    scores.push_back(std::exp(kl));
  }
  InceptionScore out;
  out.splits = splits;
  for (double s : scores) out.mean += s / static_cast<double>(splits);
  for (double s : scores) out.std += (s - out.mean) * (s - out.mean) / static_cast<double>(splits);  // np.std
  out.std = std::sqrt(out.std);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Precision and recall
// ---------------------------------------------------------------------------------------------------------
at::Tensor manifold_radii(const at::Tensor& features, int64_t k, int64_t block) {
  const at::Tensor x = features.to(at::kFloat);
  const int64_t n = x.size(0);
  if (k < 1 || n < k + 1)
    throw Error("precision/recall: a set of " + std::to_string(n) + " samples has no " + std::to_string(k) +
                "-th nearest neighbour (need at least " + std::to_string(k + 1) + ")");
  std::vector<at::Tensor> radii;
  for (int64_t i = 0; i < n; i += block) {
    const at::Tensor d = pairwise_squared_distances(x.slice(0, i, std::min(i + block, n)), x);
    // The (k+1)-th smallest: the smallest is the point itself (distance 0), as in ADM's partition at k.
    radii.push_back(std::get<0>(at::kthvalue(d, k + 1, 1)));
  }
  return at::cat(radii);
}

PrecisionRecall precision_recall(const at::Tensor& reference, const at::Tensor& samples, int64_t k, int64_t block) {
  if (reference.dim() != 2 || samples.dim() != 2 || reference.size(1) != samples.size(1))
    throw Error("precision/recall: feature shapes " + shape_string(reference.sizes()) + " and " +
                shape_string(samples.sizes()) + " do not match");
  const at::Tensor ref = reference.to(at::kFloat), smp = samples.to(reference.device(), at::kFloat);
  const at::Tensor ref_radii = manifold_radii(ref, k, block), smp_radii = manifold_radii(smp, k, block);
  PrecisionRecall out;
  out.k = k;
  out.precision = fraction_inside(smp, ref, ref_radii, block);
  out.recall = fraction_inside(ref, smp, smp_radii, block);
  return out;
}

}  // namespace lit
