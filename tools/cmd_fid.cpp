// lit fid [--inception FILE] INPUT [SAMPLES]: FID and friends, as pytorch-fid and the ADM evaluator compute them.
//   one input:  its feature statistics (--save-stats writes them as pytorch-fid's .npz), and --metrics is
//   two inputs: REF then SAMPLES; --metrics fid,is,pr (FID by default; IS is of the samples)
// An input is an image folder, an .npz image batch (arr_0) or an .npz of statistics (mu, sigma); the
// Inception network is loaded only when some number needs features. Every number is printed with the
// convention it follows.
#include <c10/util/Exception.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>

#include "kernels/cuda_support.h"
#include "model/fid_inputs.h"
#include "model/frechet.h"
#include "model/inception.h"
#include "tools/commands.h"
#include "tools/progress.h"
#include "weights/atomic_file.h"
#include "weights/error.h"

namespace lit::cli {
namespace {

const char* kIsConvention = "Inception Score (10 splits, softmax over the 1008 logits without the fc bias, as ADM)";
const char* kPrConvention = "k=3 nearest neighbours on pool3 features, ADM evaluator convention";

struct FidOptions {
  std::vector<std::string> inputs;
  std::string inception;
  std::string metrics;
  std::string save_stats;
  std::string json;
  std::string device = "cpu";
  int64_t batch_size = 50;
};

at::Device parse_fid_device(const std::string& text) {
  at::Device device = at::kCPU;
  try {
    device = at::Device(text);
  } catch (const c10::Error&) {
    throw Error("--device '" + text + "' is not a device: use cpu, cuda or cuda:N");
  }
  if (device.is_cuda() && !kernels::cuda_available()) throw Error("--device " + text + ": " + kernels::cuda_summary());
  if (!device.is_cpu() && !device.is_cuda()) throw Error("--device '" + text + "': only cpu and cuda are supported");
  return device;
}

std::set<std::string> parse_metrics(const std::string& text, size_t num_inputs) {
  std::set<std::string> metrics;
  std::stringstream ss(text.empty() ? (num_inputs == 2 ? "fid" : "") : text);
  for (std::string m; std::getline(ss, m, ',');) {
    if (m.empty()) continue;
    if (m != "fid" && m != "is" && m != "pr") throw Error("--metrics: unknown metric '" + m + "' (use fid, is, pr)");
    if (m != "is" && num_inputs != 2) throw Error("--metrics " + m + " compares two inputs: give REF and SAMPLES");
    metrics.insert(m);
  }
  return metrics;
}

// One input with what has been computed for it so far.
struct Evaluated {
  FidInput input;
  FeatureBatch features;  // empty until computed
  std::optional<FeatureStatistics> stats;
};

class Evaluation {
 public:
  explicit Evaluation(const FidOptions& opt) : opt_(opt), device_(parse_fid_device(opt.device)) {}

  FeatureExtractor& network() {
    if (!network_) {
      auto inception = std::make_shared<InceptionV3>(InceptionV3::load(opt_.inception, device_));
      network_ = std::make_unique<InceptionFeatureExtractor>(std::move(inception));
    }
    return *network_;
  }
  at::Device device() const { return device_; }

  // What the numbers follow: the network's convention when it ran; for statistics files alone, what their
  // dimension says (2048: pytorch-fid's pool3, the layout those files are written in).
  std::string convention(int64_t dim) const {
    if (network_) return network_->convention();
    if (dim == InceptionV3::kFeatureDim)
      return "statistics files, pytorch-fid convention assumed: pool3 2048-d, float64 stats";
    return "statistics files of " + std::to_string(dim) + "-d features, not Inception pool3; float64 stats";
  }

  const FeatureBatch& features(Evaluated& e) {
    if (!e.features.features.defined()) {
      FeatureExtractor& net = network();
      ProgressBar bar(e.input.num_images(), "images");
      FeatureRunOptions run;
      run.batch_size = opt_.batch_size;
      run.progress = [&](int64_t done, int64_t) { bar.update(done, e.input.path); };
      e.features = extract_features(e.input, net, run);
      bar.finish(e.input.path);
    }
    return e.features;
  }

  // The file's own statistics when it has them (a statistics file, an ADM reference batch), as ADM does.
  const FeatureStatistics& statistics(Evaluated& e) {
    if (!e.stats) e.stats = e.input.stats ? *e.input.stats : compute_statistics(features(e).features, e.input.path);
    return *e.stats;
  }

 private:
  const FidOptions& opt_;
  at::Device device_;
  std::unique_ptr<FeatureExtractor> network_;
};

std::string describe(const FidInput& in) {
  std::string s = in.path + ": " + fid_input_kind_name(in.kind);
  if (in.has_images()) s += ", " + std::to_string(in.num_images()) + " images";
  if (in.kind == FidInputKind::ImageBatch && in.stats) s += " (with its own mu, sigma: used for FID, as ADM does)";
  return s;
}

void write_json(const std::string& path, const nlohmann::ordered_json& j) {
  const std::string text = j.dump(2) + "\n";
  AtomicFile file(path);
  file.write(text.data(), text.size());
  file.commit();
}

std::string format_number(const char* format, double a, double b = 0) {
  char text[64];
  std::snprintf(text, sizeof text, format, a, b);
  return text;
}

void run_fid(const FidOptions& opt) {
  // Everything that can be refused is checked before any work, and the report is printed only at the end, so
  // that an error is the one line the user sees.
  if (opt.inputs.empty() || opt.inputs.size() > 2) throw Error("give one input (statistics) or two (REF SAMPLES)");
  const std::set<std::string> metrics = parse_metrics(opt.metrics, opt.inputs.size());
  if (!opt.save_stats.empty() && opt.inputs.size() != 1)
    throw Error("--save-stats writes the statistics of a single input: give one input");
  if (opt.batch_size < 1) throw Error("--batch-size must be at least 1");
  parse_fid_device(opt.device);
  std::vector<Evaluated> inputs;
  for (const auto& path : opt.inputs) inputs.push_back({open_fid_input(path), {}, {}});
  Evaluated& samples = inputs.back();
  bool needs_network = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const FidInput& in = inputs[i].input;
    const bool needs_features = (metrics.count("pr") != 0) || (metrics.count("is") != 0 && i + 1 == inputs.size());
    if (needs_features && !in.has_images())
      throw Error(in.path + ": holds statistics only: --metrics " + (metrics.count("pr") ? "pr" : "is") +
                  " needs images");
    needs_network = needs_network || needs_features || !in.stats;
  }
  FidOptions resolved = opt;
  if (needs_network) resolved.inception = resolve_inception_path(opt.inception);
  Evaluation eval(resolved);

  std::ostringstream out;
  nlohmann::ordered_json j;
  std::vector<std::string> warnings;
  const char* roles[] = {"reference", "samples"};
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string role = inputs.size() == 1 ? "input" : roles[i];
    out << role << std::string(12 - role.size(), ' ') << describe(inputs[i].input) << "\n";
    j[role] = {{"path", inputs[i].input.path},
               {"kind", fid_input_kind_name(inputs[i].input.kind)},
               {"images", inputs[i].input.num_images()}};
  }

  if (inputs.size() == 1) {
    const FeatureStatistics& s = eval.statistics(samples);
    const int64_t d = s.mu.size(0);
    out << "statistics  mu (" << d << "), sigma (" << d << "x" << d << "), float64"
        << (s.count ? ", from " + std::to_string(s.count) + " images" : std::string(", read from the file")) << " ("
        << eval.convention(d) << ")\n";
    j["convention"] = eval.convention(d);
    j["feature_dim"] = d;
    if (!opt.save_stats.empty()) {
      save_statistics(opt.save_stats, s);
      out << "saved       " << opt.save_stats << " (mu, sigma; readable by pytorch-fid and clean-fid)\n";
      j["saved_stats"] = opt.save_stats;
    }
  }
  if (metrics.count("fid")) {
    const FeatureStatistics& ref = eval.statistics(inputs[0]);
    const FeatureStatistics& smp = eval.statistics(inputs[1]);
    const FrechetResult fid = frechet_distance(ref, smp);
    const std::string convention = eval.convention(ref.mu.size(0));
    out << "FID (" << convention << "): " << format_number("%.6f", fid.distance) << "\n";
    j["fid"] = {{"value", fid.distance}, {"convention", convention}};
    if (!fid.warning.empty()) warnings.push_back(fid.warning);
  }
  if (metrics.count("is")) {
    const FeatureBatch& f = eval.features(samples);
    if (!f.logits.defined()) throw Error(eval.network().name() + " has no classifier: no Inception Score");
    const InceptionScore is = inception_score(f.logits, 10);
    out << kIsConvention << ": " << format_number("%.6f +- %.6f", is.mean, is.std) << "\n";
    j["inception_score"] = {{"mean", is.mean}, {"std", is.std}, {"splits", is.splits}, {"convention", kIsConvention}};
  }
  if (metrics.count("pr")) {
    // On --device: the pairwise distances of 50,000 x 50,000 features are the heavy part.
    const at::Tensor ref = eval.features(inputs[0]).features.to(eval.device());
    const at::Tensor smp = eval.features(inputs[1]).features.to(eval.device());
    const PrecisionRecall pr = precision_recall(ref, smp, 3);
    out << "Precision (" << kPrConvention << "): " << format_number("%.6f", pr.precision) << "\n";
    out << "Recall (" << kPrConvention << "): " << format_number("%.6f", pr.recall) << "\n";
    j["precision"] = pr.precision;
    j["recall"] = pr.recall;
    j["precision_recall_convention"] = kPrConvention;
  }
  j["warnings"] = warnings;
  if (!opt.json.empty()) {
    write_json(opt.json, j);
    out << "wrote       " << opt.json << "\n";
  }
  std::cout << out.str();
  std::cout.flush();
  for (const auto& w : warnings) std::cerr << "lit: warning: " << w << "\n";
}

}  // namespace

void add_fid_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "fid", "FID, Inception Score, precision/recall (pytorch-fid / ADM conventions), or one input's statistics");
  static FidOptions opt;
  cmd->add_option("inputs", opt.inputs,
                  "INPUT (its statistics) or REF SAMPLES: image folders, .npz image batches (arr_0) or .npz "
                  "statistics (mu, sigma)")
      ->required()
      ->expected(1, 2);
  cmd->add_option("--inception", opt.inception,
                  std::string("InceptionV3 weights (default: $LIT_INCEPTION); the standard file is ") +
                      kInceptionFileName + " from " + kInceptionUrl);
  cmd->add_option("--metrics", opt.metrics, "comma-separated: fid, is, pr (default: fid with two inputs)");
  cmd->add_option("--save-stats", opt.save_stats, "write the input's statistics (mu, sigma) to this .npz");
  cmd->add_option("--json", opt.json, "also write the results to this JSON file");
  cmd->add_option("--device", opt.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--batch-size", opt.batch_size, "images per forward pass")->capture_default_str();
  cmd->callback([] { run_fid(opt); });
}

}  // namespace lit::cli
