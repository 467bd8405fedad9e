#include "sampler/schedule.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "common/error.h"

namespace lit {
namespace {

// numpy.linspace(start, stop, num) exactly: start + i * step, with the last value set to stop.
std::vector<double> linspace(double start, double stop, int64_t num) {
  std::vector<double> y(static_cast<size_t>(num));
  if (num == 1) {
    y[0] = start;
    return y;
  }
  const double step = (stop - start) / static_cast<double>(num - 1);
  for (int64_t i = 0; i < num; ++i) y[i] = static_cast<double>(i) * step + start;
  y[num - 1] = stop;
  return y;
}

// A positive integer written alone in `text` (surrounding blanks allowed, as Python's int() does).
int64_t parse_count(const std::string& text, const std::string& respacing) {
  const size_t first = text.find_first_not_of(" \t");
  const size_t last = text.find_last_not_of(" \t");
  const std::string digits = first == std::string::npos ? "" : text.substr(first, last - first + 1);
  const bool all_digits = !digits.empty() && digits.size() <= 12 &&
                          std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!all_digits || std::stoll(digits) < 1)
    throw Error("timestep respacing '" + respacing + "': '" + text + "' is not a positive step count");
  return std::stoll(digits);
}

}  // namespace

std::vector<double> linear_beta_schedule(int64_t num_steps) {
  if (num_steps < 1) throw Error("linear beta schedule: the number of steps must be positive");
  const double scale = 1000.0 / static_cast<double>(num_steps);
  return linspace(scale * 0.0001, scale * 0.02, num_steps);
}

std::vector<int64_t> space_timesteps(int64_t num_timesteps, const std::string& section_counts) {
  if (num_timesteps < 1) throw Error("timestep respacing: the original process has no steps");
  const std::string ddim = "ddim";
  if (section_counts.compare(0, ddim.size(), ddim) == 0) {
    // DDIM's fixed striding: the integer stride that gives exactly the desired count.
    const int64_t desired = parse_count(section_counts.substr(ddim.size()), section_counts);
    for (int64_t stride = 1; stride < num_timesteps; ++stride) {
      if ((num_timesteps + stride - 1) / stride != desired) continue;
      std::vector<int64_t> steps;
      for (int64_t t = 0; t < num_timesteps; t += stride) steps.push_back(t);
      return steps;
    }
    throw Error("timestep respacing '" + section_counts + "': no integer stride gives exactly " +
                std::to_string(desired) + " of " + std::to_string(num_timesteps) + " steps");
  }

  std::vector<int64_t> counts;
  size_t begin = 0;
  while (true) {
    const size_t comma = section_counts.find(',', begin);
    counts.push_back(parse_count(section_counts.substr(begin, comma - begin), section_counts));
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }

  // The original steps are cut into len(counts) sections of near-equal size (the first `extra` one larger);
  // each section is strided with a fractional stride and rounded half to even, as Python's round() does.
  const int64_t sections = static_cast<int64_t>(counts.size());
  const int64_t size_per = num_timesteps / sections;
  const int64_t extra = num_timesteps % sections;
  std::set<int64_t> kept;
  int64_t start = 0;
  for (int64_t i = 0; i < sections; ++i) {
    const int64_t size = size_per + (i < extra ? 1 : 0);
    const int64_t count = counts[i];
    if (size < count)
      throw Error("timestep respacing '" + section_counts + "': cannot divide a section of " + std::to_string(size) +
                  " steps into " + std::to_string(count));
    const double stride = count <= 1 ? 1.0 : static_cast<double>(size - 1) / static_cast<double>(count - 1);
    double cur = 0.0;
    for (int64_t k = 0; k < count; ++k) {
      kept.insert(start + static_cast<int64_t>(std::nearbyint(cur)));
      cur += stride;
    }
    start += size;
  }
  return {kept.begin(), kept.end()};
}

DiffusionSchedule DiffusionSchedule::from_betas(std::vector<double> betas, std::vector<int64_t> timestep_map) {
  const size_t n = betas.size();
  if (n == 0) throw Error("diffusion schedule: no betas");
  for (double b : betas)
    if (!(b > 0.0 && b <= 1.0))
      throw Error("diffusion schedule: every beta must be in (0, 1], got " + std::to_string(b));
  if (timestep_map.empty())
    for (size_t i = 0; i < n; ++i) timestep_map.push_back(static_cast<int64_t>(i));
  if (timestep_map.size() != n)
    throw Error("diffusion schedule: " + std::to_string(timestep_map.size()) + " timesteps for " + std::to_string(n) +
                " betas");

  DiffusionSchedule s;
  s.timestep_map = std::move(timestep_map);
  s.original_num_steps = static_cast<int64_t>(n);
  s.betas = std::move(betas);
  const auto& b = s.betas;

  auto resize = [n](std::vector<double>& v) { v.assign(n, 0.0); };
  for (auto* v : {&s.alphas_cumprod, &s.alphas_cumprod_prev, &s.alphas_cumprod_next, &s.sqrt_alphas_cumprod,
                  &s.sqrt_one_minus_alphas_cumprod, &s.log_one_minus_alphas_cumprod, &s.sqrt_recip_alphas_cumprod,
                  &s.sqrt_recipm1_alphas_cumprod, &s.posterior_variance, &s.posterior_log_variance_clipped,
                  &s.posterior_mean_coef1, &s.posterior_mean_coef2})
    resize(*v);

  double cumprod = 1.0;
  for (size_t i = 0; i < n; ++i) {
    cumprod *= 1.0 - b[i];  // numpy.cumprod multiplies in order, as here
    s.alphas_cumprod[i] = cumprod;
  }
  for (size_t i = 0; i < n; ++i) {
    const double ac = s.alphas_cumprod[i];
    const double ac_prev = i == 0 ? 1.0 : s.alphas_cumprod[i - 1];
    s.alphas_cumprod_prev[i] = ac_prev;
    s.alphas_cumprod_next[i] = i + 1 < n ? s.alphas_cumprod[i + 1] : 0.0;
    s.sqrt_alphas_cumprod[i] = std::sqrt(ac);
    s.sqrt_one_minus_alphas_cumprod[i] = std::sqrt(1.0 - ac);
    s.log_one_minus_alphas_cumprod[i] = std::log(1.0 - ac);
    s.sqrt_recip_alphas_cumprod[i] = std::sqrt(1.0 / ac);
    s.sqrt_recipm1_alphas_cumprod[i] = std::sqrt(1.0 / ac - 1.0);
    s.posterior_variance[i] = b[i] * (1.0 - ac_prev) / (1.0 - ac);
    s.posterior_mean_coef1[i] = b[i] * std::sqrt(ac_prev) / (1.0 - ac);
    s.posterior_mean_coef2[i] = (1.0 - ac_prev) * std::sqrt(1.0 - b[i]) / (1.0 - ac);
  }
  // The posterior variance is 0 at step 0, so its log is clipped to step 1's value. A one-step process has
  // no step 1 (DiT leaves the array empty and cannot sample it); there we use log beta_0, the other end of
  // the learned range, so a one-step process still samples.
  for (size_t i = 0; i < n; ++i)
    s.posterior_log_variance_clipped[i] =
        n == 1 ? std::log(b[0]) : std::log(i == 0 ? s.posterior_variance[1] : s.posterior_variance[i]);
  return s;
}

DiffusionSchedule DiffusionSchedule::linear(const std::string& respacing, int64_t num_steps) {
  // Like DiT's create_diffusion, even "no respacing" goes through the respacing (keeping every step), which
  // recomputes the betas from the cumulative alphas: they differ from the linear ones in the last bits.
  const DiffusionSchedule base = from_betas(linear_beta_schedule(num_steps));
  return base.respaced(space_timesteps(num_steps, respacing.empty() ? std::to_string(num_steps) : respacing));
}

DiffusionSchedule DiffusionSchedule::respaced(const std::vector<int64_t>& use_timesteps) const {
  std::vector<int64_t> use = use_timesteps;
  std::sort(use.begin(), use.end());
  if (use.empty()) throw Error("diffusion schedule: a respacing must keep at least one step");
  if (std::adjacent_find(use.begin(), use.end()) != use.end())
    throw Error("diffusion schedule: a respacing lists a step twice");
  if (use.front() < 0 || use.back() >= size())
    throw Error("diffusion schedule: a respacing keeps step " +
                std::to_string(use.front() < 0 ? use.front() : use.back()) + " of a " + std::to_string(size()) +
                "-step process");

  // New betas such that the kept steps have exactly the original cumulative alphas.
  std::vector<double> betas;
  std::vector<int64_t> map;
  double last_alpha_cumprod = 1.0;
  for (int64_t i : use) {
    betas.push_back(1.0 - alphas_cumprod[i] / last_alpha_cumprod);
    last_alpha_cumprod = alphas_cumprod[i];
    map.push_back(timestep_map[i]);
  }
  DiffusionSchedule s = from_betas(std::move(betas), std::move(map));
  s.original_num_steps = original_num_steps;
  return s;
}

}  // namespace lit
