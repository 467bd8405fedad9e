// Canvases painted by the tests of prompt adherence (model/eval/prompt_adherence.h) as `lit make-captions` draws
// them: black, with garments tinted a colour (pixel = gray x rgb / 255), scaled to a length, their intensity
// centroid on an anchor. The garments are Fashion-MNIST's t10k images when dataset-fashion-mnist is installed, else
// plain shapes (ellipses of several aspects, without a class).
#pragma once

#include <ATen/ATen.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace lit::test {

inline const std::string kFashionMnistTestImages = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
inline const std::string kFashionMnistTestLabels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";

inline bool have_fashion_mnist() {
  return std::filesystem::exists(kFashionMnistTestImages) && std::filesystem::exists(kFashionMnistTestLabels);
}

struct Garment {
  at::Tensor gray;     // (28, 28) uint8
  int64_t label = -1;  // Fashion-MNIST class, -1 for a plain shape
};

// The bytes [skip, skip + n) of a gzip file; empty when it cannot be read whole.
inline std::vector<uint8_t> read_gz_range(const std::string& path, size_t skip, size_t n) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return {};
  std::vector<uint8_t> out(skip + n);
  const int got = gzread(f, out.data(), static_cast<unsigned>(out.size()));
  gzclose(f);
  if (got != static_cast<int>(out.size())) return {};
  return std::vector<uint8_t>(out.begin() + static_cast<long>(skip), out.end());
}

// The first n t10k garments, or n ellipses (filled, soft edge, the longer axis 28 pixels).
inline std::vector<Garment> test_garments(int64_t n) {
  std::vector<Garment> out;
  if (have_fashion_mnist()) {
    const std::vector<uint8_t> pixels = read_gz_range(kFashionMnistTestImages, 16, static_cast<size_t>(n) * 784);
    const std::vector<uint8_t> labels = read_gz_range(kFashionMnistTestLabels, 8, static_cast<size_t>(n));
    if (!pixels.empty() && !labels.empty()) {
      for (int64_t i = 0; i < n; ++i)
        out.push_back({at::from_blob(const_cast<uint8_t*>(pixels.data()) + i * 784, {28, 28}, at::kByte).clone(),
                       labels[static_cast<size_t>(i)]});
      return out;
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    const double ax = 13.5 - 4.0 * static_cast<double>(i % 3), ay = 13.5;  // half-axes
    at::Tensor g = at::zeros({28, 28}, at::kByte);
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x) {
        const double d = std::hypot((x + 0.5 - 14) / ax, (y + 0.5 - 14) / ay);
        if (d <= 1) g[y][x] = static_cast<uint8_t>(d < 0.9 ? 220 : 120);
      }
    out.push_back({i % 2 ? g.transpose(0, 1).contiguous() : g, -1});
  }
  return out;
}

inline at::Tensor black_canvas(int64_t side = 64) {
  return at::zeros({side, side, 3}, at::kByte);
}

// Paints a garment as `lit make-captions` does (tools/train/caption_canvas.h): cropped to its non-zero pixels,
// resized (bilinear) so that its longer side is `length`, tinted (pixel = gray x rgb / 255), placed with its
// intensity centroid at (ax, ay) but kept inside `region` (x0, y0, x1, y1; default the canvas), drawn over the
// canvas (the brighter value wins). Returns the box of its non-zero pixels.
inline std::array<int64_t, 4> paint(at::Tensor& canvas, const at::Tensor& gray, std::array<int, 3> rgb, int64_t length,
                                    double ax, double ay, std::array<int64_t, 4> region = {0, 0, 0, 0}) {
  const int64_t h = canvas.size(0), w = canvas.size(1);
  if (region[2] == 0) region = {0, 0, w, h};
  const at::Tensor on = gray.gt(0);
  const at::Tensor ys = on.any(1).nonzero().flatten(), xs = on.any(0).nonzero().flatten();
  const int64_t gy0 = ys.min().item<int64_t>(), gy1 = ys.max().item<int64_t>() + 1;
  const int64_t gx0 = xs.min().item<int64_t>(), gx1 = xs.max().item<int64_t>() + 1;
  const int64_t ch = gy1 - gy0, cw = gx1 - gx0, longer = std::max(ch, cw);
  const int64_t rh = std::max<int64_t>(1, std::llround(double(ch) * length / longer));
  const int64_t rw = std::max<int64_t>(1, std::llround(double(cw) * length / longer));
  const at::Tensor crop = gray.slice(0, gy0, gy1).slice(1, gx0, gx1).to(at::kFloat).view({1, 1, ch, cw});
  const at::Tensor g = at::upsample_bilinear2d(crop, {rh, rw}, false).round().clamp(0, 255).view({rh, rw});
  const double sum = g.sum().item<double>();
  const double cx = (g.sum(0) * (at::arange(rw, at::kFloat) + 0.5)).sum().item<double>() / sum;
  const double cy = (g.sum(1) * (at::arange(rh, at::kFloat) + 0.5)).sum().item<double>() / sum;
  const int64_t x0 = std::clamp<int64_t>(std::llround(ax - cx), region[0], region[2] - rw);
  const int64_t y0 = std::clamp<int64_t>(std::llround(ay - cy), region[1], region[3] - rh);
  const at::Tensor colour = at::tensor({rgb[0], rgb[1], rgb[2]}, at::kFloat);
  const at::Tensor tinted = ((g.unsqueeze(2) * colour + 127) / 255).floor().to(at::kByte);
  at::Tensor target = canvas.narrow(0, y0, rh).narrow(1, x0, rw);
  target.copy_(at::max(target, tinted));
  return {x0, y0, x0 + rw, y0 + rh};
}

// The anchors a test paints at (64 x 64 canvas): a quarter of the side from the edges, or the middle.
inline std::array<double, 2> test_anchor(const std::string& position, int64_t canvas = 64) {
  const double c = static_cast<double>(canvas);
  if (position == "left") return {c / 4, c / 2};
  if (position == "right") return {c * 3 / 4, c / 2};
  if (position == "top") return {c / 2, c / 4};
  if (position == "bottom") return {c / 2, c * 3 / 4};
  return {c / 2, c / 2};
}

// The garment lengths of the sizes: small S * 5 / 16, large S / 2.
inline int64_t test_side(const std::string& size, int64_t canvas = 64) {
  return size == "small" ? canvas * 5 / 16 : canvas / 2;
}

struct TestColour {
  const char* name;
  std::array<int, 3> rgb;
};

// The palette of `lit make-captions`.
inline const std::vector<TestColour>& test_colours() {
  static const std::vector<TestColour> colours = {
      {"red", {255, 40, 40}},     {"orange", {255, 128, 0}}, {"yellow", {255, 255, 0}},
      {"green", {50, 255, 50}},   {"cyan", {0, 255, 255}},   {"blue", {40, 80, 255}},
      {"purple", {160, 50, 255}}, {"pink", {255, 80, 200}},  {"white", {255, 255, 255}},
  };
  return colours;
}

inline const TestColour& test_colour(const std::string& name) {
  for (const TestColour& c : test_colours())
    if (name == c.name) return c;
  throw std::out_of_range("no test colour " + name);
}

// One garment object of a prompt line.
inline nlohmann::json test_object(int64_t cls, const TestColour& colour, const std::string& position,
                                  const std::string& size) {
  return {{"class", cls},      {"garment", "garment"}, {"colour", colour.name},
          {"rgb", colour.rgb}, {"position", position}, {"size", size}};
}

}  // namespace lit::test
