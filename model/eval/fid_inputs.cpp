#include "model/eval/fid_inputs.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>
#include <system_error>

#include "common/error.h"
#include "common/format.h"
#include "weights/generation_params.h"
#include "weights/image_io.h"
#include "weights/npy.h"

namespace lit {
namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

const char* fid_input_kind_name(FidInputKind kind) {
  switch (kind) {
    case FidInputKind::ImageFolder:
      return "image folder";
    case FidInputKind::ImageBatch:
      return "image batch (.npz arr_0)";
    case FidInputKind::Statistics:
      return "statistics (.npz mu, sigma)";
  }
  return "?";
}

int64_t FidInput::num_images() const {
  if (kind == FidInputKind::ImageFolder) return static_cast<int64_t>(files.size());
  if (kind == FidInputKind::ImageBatch) return pixels.size(0);
  return 0;
}

std::vector<std::string> list_image_files(const std::string& folder) {
  static const std::set<std::string> extensions = {".bmp", ".jpg", ".jpeg", ".pgm", ".png",
                                                   ".ppm", ".tif", ".tiff", ".webp"};
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(folder, fs::directory_options::follow_directory_symlink, ec), end;
       !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file() && extensions.count(lower(it->path().extension().string())))
      files.push_back(it->path().string());
  }
  if (ec) throw Error(folder + ": cannot list the folder (" + ec.message() + ")");
  if (files.empty())
    throw Error(folder +
                ": no images in the folder (looked recursively for .png, .jpg, .jpeg, .bmp, .webp, .tif, "
                ".pgm, .ppm)");
  std::sort(files.begin(), files.end());
  return files;
}

FidInput open_fid_input(const std::string& path) {
  FidInput in;
  in.path = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    in.kind = FidInputKind::ImageFolder;
    in.files = list_image_files(path);
    return in;
  }
  if (!fs::exists(path, ec)) throw Error(path + ": no such file or folder");
  const auto arrays = read_npz(path);
  std::string names;
  bool has_mu = false, has_images = false;
  for (const auto& [name, array] : arrays) {
    names += (names.empty() ? "" : ", ") + name;
    if (name == "mu") has_mu = true;
    if (name == "arr_0") {
      has_images = true;
      in.pixels = array;
    }
    if (name == "arr_1") in.labels = array;
  }
  if (has_mu) in.stats = statistics_from_arrays(arrays, path);
  if (has_images) {
    const at::Tensor& p = in.pixels;
    if (p.scalar_type() != at::kByte || p.dim() != 4 || (p.size(3) != 3 && p.size(3) != 1))
      throw Error(path + ": arr_0 must be uint8 images (N, H, W, 3), got " +
                  std::string(c10::toString(p.scalar_type())) + " " + shape_string(p.sizes()));
    if (p.size(0) == 0) throw Error(path + ": arr_0 holds no images");
    if (in.labels.defined()) {
      const at::Tensor& l = in.labels;
      if ((l.scalar_type() != at::kLong && l.scalar_type() != at::kInt) || l.dim() != 1 || l.size(0) != p.size(0))
        throw Error(path + ": arr_1 must be the class labels, int64 or int32 (" + std::to_string(p.size(0)) +
                    ",), got " + std::string(c10::toString(l.scalar_type())) + " " + shape_string(l.sizes()));
      in.labels = l.to(at::kLong);
    }
    in.kind = FidInputKind::ImageBatch;
    return in;
  }
  if (!has_mu)
    throw Error(path + ": neither an image batch (arr_0) nor statistics (mu, sigma); arrays found: " +
                (names.empty() ? std::string("none") : names));
  in.kind = FidInputKind::Statistics;
  return in;
}

at::Tensor read_folder_labels(const std::vector<std::string>& files) {
  std::vector<int64_t> labels;
  for (const auto& file : files) {
    if (!looks_like_png(file)) return {};
    std::optional<std::string> label;
    if (const auto text = find_parameters_text(read_png_info(file).text))
      label = parse_generation_params(*text).get("Class");
    if (!label || label->empty() || label->find_first_not_of("0123456789") != std::string::npos) return {};
    labels.push_back(std::stoll(*label));
  }
  return at::tensor(labels, at::kLong);
}

at::Tensor image_to_unit_rgb(const at::Tensor& pixels) {
  at::Tensor p = pixels;
  if (p.size(2) == 1) p = p.expand({p.size(0), p.size(1), 3});  // gray -> RGB, as PIL's convert("RGB")
  if (p.size(2) == 4) p = p.slice(2, 0, 3);                     // alpha dropped
  // ToTensor: HWC uint8 -> CHW float32 divided by 255.
  return p.permute({2, 0, 1}).to(at::kFloat).div(255);
}

FeatureBatch extract_features(const FidInput& input, FeatureExtractor& network, const FeatureRunOptions& options) {
  if (!input.has_images()) throw Error(input.path + ": holds statistics only, no images to compute features from");
  const int64_t n = input.num_images();
  const int64_t batch = std::max<int64_t>(1, options.batch_size);
  std::vector<at::Tensor> features, logits;
  if (options.progress) options.progress(0, n);  // the start, so that rates are measured from it

  for (int64_t begin = 0; begin < n; begin += batch) {
    const int64_t end = std::min(begin + batch, n);
    std::vector<at::Tensor> images;
    for (int64_t i = begin; i < end; ++i) {
      const at::Tensor pixels =
          input.kind == FidInputKind::ImageFolder ? read_image(input.files[static_cast<size_t>(i)]) : input.pixels[i];
      images.push_back(image_to_unit_rgb(pixels));
    }
    // A folder may mix sizes; the network resizes, so runs of one size are batched together.
    for (size_t r = 0; r < images.size();) {
      size_t e = r + 1;
      while (e < images.size() && images[e].sizes() == images[r].sizes()) ++e;
      FeatureBatch out = network.extract(at::stack(
          std::vector<at::Tensor>(images.begin() + static_cast<long>(r), images.begin() + static_cast<long>(e))));
      if (out.features.dim() != 2 || out.features.size(0) != static_cast<int64_t>(e - r))
        throw Error(network.name() + ": returned features of shape " + shape_string(out.features.sizes()) + " for " +
                    std::to_string(e - r) + " images");
      features.push_back(out.features.to(at::kCPU, at::kFloat));
      if (out.logits.defined()) logits.push_back(out.logits.to(at::kCPU, at::kFloat));
      r = e;
    }
    if (options.progress) options.progress(end, n);
  }
  FeatureBatch all;
  all.features = at::cat(features);
  if (!logits.empty()) all.logits = at::cat(logits);
  return all;
}

}  // namespace lit
