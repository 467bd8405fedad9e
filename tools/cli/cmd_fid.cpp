// lit fid [--inception FILE] INPUT [SAMPLES]: FID and friends, as pytorch-fid and the ADM evaluator compute them.
//   one input:  its feature statistics (--save-stats writes them as pytorch-fid's .npz), and --metrics is
//   two inputs: REF then SAMPLES; --metrics fid,is,pr (FID by default; IS is of the samples)
// An input is an image folder, an .npz image batch (arr_0) or an .npz of statistics (mu, sigma); the
// Inception network is loaded only when some number needs features. Every number is printed with the
// convention it follows.
// --feature-network FILE: the features are a Fashion-MNIST classifier's (`lit train-classifier`) instead of
// Inception's: the distance is then "FD-FMNIST" (not an FID), precision/recall are computed in that space and,
// when the samples carry labels (an .npz's arr_1, the "Class" of `lit generate` PNGs), the classifier's
// accuracy on them is reported per class. `fashion-mnist:t10k` / `fashion-mnist:train` (or
// fashion-mnist:DIR:SPLIT) name the real images as an input.
#include <c10/util/Exception.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>

#include "kernels/runtime/cuda_support.h"
#include "model/backbone/builtin_model.h"
#include "model/eval/fid_inputs.h"
#include "model/eval/fmnist_classifier.h"
#include "model/eval/frechet.h"
#include "model/eval/inception.h"
#include "tools/cli/commands.h"
#include "tools/cli/shards.h"
#include "tools/train/fashion_mnist.h"
#include "tools/cli/progress.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "weights/image_io.h"

namespace lit::cli {
namespace {

const char* kIsConvention = "Inception Score (10 splits, softmax over the 1008 logits without the fc bias, as ADM)";
const char* kPrConvention = "k=3 nearest neighbours on pool3 features, ADM evaluator convention";
const char* kFmnistPrConvention =
    "k=3 nearest neighbours on the Fashion-MNIST classifier's 256-d features, Kynkaanniemi et al. / ADM rule";

struct FidOptions {
  std::vector<std::string> inputs;
  std::string inception;
  std::string feature_network;  // a Fashion-MNIST classifier instead of Inception
  std::string metrics;
  std::string save_stats;
  std::string json;
  std::string device = "cpu";
  int64_t batch_size = 50;
};

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
  explicit Evaluation(const FidOptions& opt) : opt_(opt), device_(kernels::parse_device(opt.device)) {}

  FeatureExtractor& network() {
    if (!network_ && !opt_.feature_network.empty()) {
      LoadedFmnistClassifier loaded = load_fmnist_classifier(opt_.feature_network, device_);
      network_ = std::make_unique<FmnistFeatureExtractor>(loaded.model, opt_.feature_network);
    }
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
    if (!opt_.feature_network.empty() && dim == FmnistClassifierImpl::kFeatureDim)
      return std::string("statistics files, assumed ") + kFdFmnistConvention;
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
      if (opt_.feature_network.empty()) {
        e.features = extract_features(e.input, net, run);
      } else {
        try {
          e.features = extract_features(e.input, net, run);
        } catch (const Error& error) {  // e.g. images of a size the classifier does not take: say which input
          throw Error(e.input.path + ": " + error.what());
        }
      }
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

// `fashion-mnist:SPLIT` or `fashion-mnist:DIR:SPLIT`: the real images (uint8 (N, 32, 32, 1), padded with
// black as for training) and their labels.
bool is_fashion_mnist_spec(const std::string& path) {
  return path.rfind("fashion-mnist:", 0) == 0;
}

FidInput open_fashion_mnist(const std::string& spec) {
  const std::string rest = spec.substr(14);
  const size_t colon = rest.rfind(':');
  const std::string dir = colon == std::string::npos ? train::default_fashion_mnist_dir() : rest.substr(0, colon);
  const std::string split = colon == std::string::npos ? rest : rest.substr(colon + 1);
  if (split != "train" && split != "t10k")
    throw Error(spec + ": the split is train or t10k (fashion-mnist:t10k, fashion-mnist:DIR:train)");
  const auto data = train::load_fashion_mnist(dir, split);
  FidInput in;
  in.path = spec;
  in.kind = FidInputKind::ImageBatch;
  std::vector<at::Tensor> images;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < data->size(); ++i) {
    const auto example = data->get(i, 0);
    images.push_back(example.x);
    labels.push_back(example.label);
  }
  // [-1, 1] back to the bytes it came from: x = b / 127.5 - 1.
  in.pixels = at::stack(images).add(1).mul(127.5).round().to(at::kByte).permute({0, 2, 3, 1}).contiguous();
  in.labels = at::tensor(labels, at::kLong);
  return in;
}

FidInput open_input(const std::string& path) {
  if (!is_fashion_mnist_spec(path) && path.find(',') != std::string::npos) return open_fid_shards(path);  // A,B,...
  return is_fashion_mnist_spec(path) ? open_fashion_mnist(path) : open_fid_input(path);
}

std::string describe(const FidInput& in) {
  if (is_fashion_mnist_spec(in.path))
    return in.path + ": Fashion-MNIST, " + std::to_string(in.num_images()) +
           " images (28x28 padded with black to 32x32), with class labels";
  std::string s = in.path + ": " + fid_input_kind_name(in.kind);
  if (in.has_images()) s += ", " + std::to_string(in.num_images()) + " images";
  if (in.kind == FidInputKind::ImageBatch && in.stats) s += " (with its own mu, sigma: used for FID, as ADM does)";
  if (in.labels.defined()) s += ", with class labels";
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
  const bool fmnist = !opt.feature_network.empty();
  if (fmnist && !opt.inception.empty()) throw Error("--inception and --feature-network: give one feature network");
  // In the classifier's space precision/recall come with the distance by default (they are cheap at 256-d).
  const std::set<std::string> metrics = parse_metrics(
      fmnist && opt.metrics.empty() && opt.inputs.size() == 2 ? "fid,pr" : opt.metrics, opt.inputs.size());
  if (fmnist && metrics.count("is"))
    throw Error("--metrics is: the Inception Score needs Inception, not --feature-network");
  if (!opt.save_stats.empty() && opt.inputs.size() != 1)
    throw Error("--save-stats writes the statistics of a single input: give one input");
  if (opt.batch_size < 1) throw Error("--batch-size must be at least 1");
  kernels::parse_device(opt.device);
  std::vector<Evaluated> inputs;
  for (const auto& path : opt.inputs) {
    inputs.push_back({open_input(path), {}, {}});
    // An ADM reference batch's own mu, sigma are Inception's: in the classifier's space its images count.
    if (fmnist && inputs.back().input.kind == FidInputKind::ImageBatch) inputs.back().input.stats.reset();
  }
  Evaluated& samples = inputs.back();
  // The labels of a folder of `lit generate` PNGs, for the class accuracy (read only when it is reported).
  if (fmnist && inputs.size() == 2 && samples.input.kind == FidInputKind::ImageFolder)
    samples.input.labels = read_folder_labels(samples.input.files);
  // The classifier takes 28x28 or 32x32 images: refused here, before any work (a folder by its first image).
  for (const Evaluated& e : inputs) {
    if (!fmnist || !e.input.has_images()) continue;
    const at::Tensor first =
        e.input.kind == FidInputKind::ImageFolder ? read_image(e.input.files[0]) : e.input.pixels[0];
    if (!((first.size(0) == 28 && first.size(1) == 28) || (first.size(0) == 32 && first.size(1) == 32)))
      throw Error(e.input.path + ": the Fashion-MNIST classifier takes 28x28 or 32x32 images, got " +
                  std::to_string(first.size(0)) + "x" + std::to_string(first.size(1)));
  }
  const bool class_accuracy = fmnist && inputs.size() == 2 && samples.input.labels.defined();
  if (class_accuracy && samples.input.labels.numel() &&
      (samples.input.labels.min().item<int64_t>() < 0 ||
       samples.input.labels.max().item<int64_t>() >= FmnistClassifierImpl::kNumClasses))
    throw Error(samples.input.path + ": class labels outside 0..9, not Fashion-MNIST classes");
  bool needs_network = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const FidInput& in = inputs[i].input;
    const bool needs_features = (metrics.count("pr") != 0) || (metrics.count("is") != 0 && i + 1 == inputs.size());
    if (needs_features && !in.has_images())
      throw Error(in.path + ": holds statistics only: --metrics " + (metrics.count("pr") ? "pr" : "is") +
                  " needs images");
    needs_network = needs_network || needs_features || !in.stats || class_accuracy;
  }
  FidOptions resolved = opt;
  if (needs_network && !fmnist) resolved.inception = resolve_inception_path(opt.inception);
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
    const char* name = fmnist ? "FD-FMNIST" : "FID";
    out << name << " (" << convention << "): " << format_number("%.6f", fid.distance) << "\n";
    j[fmnist ? "fd_fmnist" : "fid"] = {{"value", fid.distance}, {"convention", convention}};
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
    const char* convention = fmnist ? kFmnistPrConvention : kPrConvention;
    out << "Precision (" << convention << "): " << format_number("%.6f", pr.precision) << "\n";
    out << "Recall (" << convention << "): " << format_number("%.6f", pr.recall) << "\n";
    j["precision"] = pr.precision;
    j["recall"] = pr.recall;
    j["precision_recall_convention"] = convention;
  }
  if (class_accuracy) {
    // How often the classifier agrees with the class each sample was generated (or labelled) as.
    const at::Tensor predicted = eval.features(samples).logits.argmax(1);
    const at::Tensor& labels = samples.input.labels;
    const std::vector<std::string>& names = fashion_mnist_class_names();
    const int64_t correct = predicted.eq(labels).sum().item<int64_t>(), n = labels.size(0);
    out << "class accuracy (the classifier's prediction = the sample's label): "
        << format_number("%.4f", static_cast<double>(correct) / static_cast<double>(n)) << " (" << correct << "/" << n
        << ")\n";
    nlohmann::ordered_json per_class = nlohmann::ordered_json::array();
    for (int64_t c = 0; c < FmnistClassifierImpl::kNumClasses; ++c) {
      const at::Tensor mask = labels.eq(c);
      const int64_t count = mask.sum().item<int64_t>();
      if (count == 0) continue;
      const int64_t right = predicted.masked_select(mask).eq(c).sum().item<int64_t>();
      const double acc = static_cast<double>(right) / static_cast<double>(count);
      const std::string& cname = names[static_cast<size_t>(c)];
      out << "  " << c << " " << cname << std::string(cname.size() < 12 ? 12 - cname.size() : 1, ' ')
          << format_number("%.4f", acc) << " (" << right << "/" << count << ")\n";
      per_class.push_back({{"class", c}, {"name", cname}, {"accuracy", acc}, {"correct", right}, {"count", count}});
    }
    j["class_accuracy"] = {{"value", static_cast<double>(correct) / static_cast<double>(n)},
                           {"correct", correct},
                           {"count", n},
                           {"per_class", per_class}};
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
                  "INPUT (its statistics) or REF SAMPLES: image folders, .npz image batches (arr_0, labels arr_1), "
                  "the shards of one run as A,B,... (folders or batches), "
                  ".npz statistics (mu, sigma), or fashion-mnist[:DIR]:t10k|train")
      ->required()
      ->expected(1, 2);
  cmd->add_option("--inception", opt.inception,
                  std::string("InceptionV3 weights (default: $LIT_INCEPTION); the standard file is ") +
                      kInceptionFileName + " from " + kInceptionUrl);
  cmd->add_option("--feature-network", opt.feature_network,
                  "a Fashion-MNIST classifier (lit train-classifier; the built-in one is "
                  "model/builtin/fmnist-classifier.safetensors): FD-FMNIST, precision/recall and class accuracy "
                  "in its feature space instead of Inception's");
  cmd->add_option("--metrics", opt.metrics,
                  "comma-separated: fid, is, pr (default: fid with two inputs; fid,pr with --feature-network)");
  cmd->add_option("--save-stats", opt.save_stats, "write the input's statistics (mu, sigma) to this .npz");
  cmd->add_option("--json", opt.json, "also write the results to this JSON file");
  cmd->add_option("--device", opt.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--batch-size", opt.batch_size, "images per forward pass")->capture_default_str();
  cmd->callback([] { run_fid(opt); });
}

}  // namespace lit::cli
