#include "tools/train/caption_canvas.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "common/error.h"

namespace lit::train {
namespace {

// ---------------------------------------------------------------------------------------------------------
// Integer randomness: splitmix64 (Steele, Lea, Flood 2014), the same numbers everywhere.
// ---------------------------------------------------------------------------------------------------------
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n > 0, without modulo bias (draws below 2^64 mod n are rejected).
  int64_t below(int64_t n) {
    const uint64_t un = static_cast<uint64_t>(n), threshold = (0 - un) % un;
    for (;;) {
      const uint64_t x = next();
      if (x >= threshold) return static_cast<int64_t>(x % un);
    }
  }
  // True with probability p: 53 random bits against p * 2^53 (both exact in a double).
  bool chance(double p) { return static_cast<double>(next() >> 11) < p * 9007199254740992.0; }
  template <typename T>
  const T& pick(const std::vector<T>& items) {
    return items[static_cast<size_t>(below(static_cast<int64_t>(items.size())))];
  }

 private:
  uint64_t state_;
};

constexpr uint64_t kEvalSeed = 0x4c49542d4556414cULL;  // "LIT-EVAL": the evaluation prompts' fixed stream
constexpr int kPromptsPerGroup = 80;
constexpr int kMaxDraws = 10000;  // attempts to draw an allowed garment; far more than ever needed

enum Position { kLeft = 0, kRight = 1, kTop = 2, kBottom = 3, kCentre = 4 };

// A garment by indices: class, palette colour, position, size (0 small, 1 large).
struct Garment {
  int cls = 0, colour = 0, position = 0, size = 0;
};

int64_t garment_key(const Garment& g) {
  return ((static_cast<int64_t>(g.cls) * 16 + g.colour) * 8 + g.position) * 2 + g.size;
}
int64_t pair_key(const Garment& a, const Garment& b) {
  return garment_key(a) * 4096 + garment_key(b);
}

int64_t floor_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
int64_t round_div(int64_t a, int64_t b) {  // b > 0; halves round up
  return floor_div(2 * a + b, 2 * b);
}

// ---------------------------------------------------------------------------------------------------------
// Caption phrases
// ---------------------------------------------------------------------------------------------------------
const std::vector<std::vector<std::string>>& size_words() {
  static const std::vector<std::vector<std::string>> words = {{"small", "little"}, {"large", "big"}};
  return words;
}

const std::vector<std::vector<std::string>>& position_phrases() {
  static const std::vector<std::vector<std::string>> phrases = {
      {"on the left", "at the left", "on the left side", "to the left"},
      {"on the right", "at the right", "on the right side", "to the right"},
      {"at the top", "near the top", "in the top half", "at the top of the picture"},
      {"at the bottom", "near the bottom", "in the bottom half", "at the bottom of the picture"},
      {"in the centre", "in the middle", "in the center", "in the middle of the picture"}};
  return phrases;
}

std::string with_article(const std::string& words) {
  const char c = words.empty() ? 'x' : words[0];
  const bool vowel = c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
  return (vowel ? "an " : "a ") + words;
}

// "small red", "red": the adjectives of a garment.
std::string adjectives(SplitMix64& rng, const Garment& g, bool with_size) {
  const std::string& colour = canvas_palette()[static_cast<size_t>(g.colour)].name;
  return with_size ? rng.pick(size_words()[static_cast<size_t>(g.size)]) + " " + colour : colour;
}

// "a small red sneaker", "an orange bag", "green trousers", "a pair of green trousers".
std::string noun_phrase(SplitMix64& rng, const Garment& g, bool with_size) {
  const GarmentNoun& noun = rng.pick(canvas_garments()[static_cast<size_t>(g.cls)].nouns);
  const std::string words = adjectives(rng, g, with_size) + " " + noun.singular;
  if (noun.pair) return rng.below(2) == 0 ? words : "a pair of " + words;
  return with_article(words);
}

std::string position_phrase(SplitMix64& rng, int position) {
  return rng.pick(position_phrases()[static_cast<size_t>(position)]);
}

std::string single_caption(SplitMix64& rng, const Garment& g, bool with_size) {
  const std::string np = noun_phrase(rng, g, with_size), pos = position_phrase(rng, g.position);
  switch (rng.below(6)) {
    case 0:
      return np + " " + pos;
    case 1:
      return "a picture of " + np + " " + pos;
    case 2:
      return np + " " + pos + " on a black background";
    case 3:
      return "there is " + np + " " + pos;
    case 4:
      return pos + ": " + np;
    default:
      return "one garment: " + np + " " + pos;
  }
}

// a (left or top) and b (right or bottom).
std::string pair_caption(SplitMix64& rng, const Garment& a, const Garment& b, bool size_a, bool size_b) {
  const bool side_by_side = a.position == kLeft;
  if (a.cls == b.cls && rng.below(2) == 0) {  // "two sneakers, red on the left and white on the right"
    const GarmentNoun& noun = rng.pick(canvas_garments()[static_cast<size_t>(a.cls)].nouns);
    const std::string head = "two " + noun.plural + ", ";
    const std::string adj_a = adjectives(rng, a, size_a), adj_b = adjectives(rng, b, size_b);
    if (side_by_side) return head + adj_a + " on the left and " + adj_b + " on the right";
    if (rng.below(2) == 0) return head + adj_a + " above " + adj_b;
    return head + adj_a + " at the top and " + adj_b + " at the bottom";
  }
  const std::string np_a = noun_phrase(rng, a, size_a), np_b = noun_phrase(rng, b, size_b);
  const int64_t form = rng.below(5);
  if (side_by_side) {
    switch (form) {
      case 0:
        return np_a + " on the left and " + np_b + " on the right";
      case 1:
        return "two garments: " + np_a + " on the left and " + np_b + " on the right";
      case 2:
        return np_a + " to the left of " + np_b;
      case 3:
        return np_b + " to the right of " + np_a;
      default:
        return "on the left " + np_a + ", on the right " + np_b;
    }
  }
  switch (form) {
    case 0:
      return np_a + " above " + np_b;
    case 1:
      return np_b + " below " + np_a;
    case 2:
      return np_a + " at the top and " + np_b + " at the bottom";
    case 3:
      return "two garments: " + np_a + " at the top and " + np_b + " at the bottom";
    default:
      return np_b + " under " + np_a;
  }
}

CanvasObject object_of(const Garment& g) {
  CanvasObject o;
  o.class_index = g.cls;
  o.colour = canvas_palette()[static_cast<size_t>(g.colour)].name;
  o.position = canvas_positions()[static_cast<size_t>(g.position)];
  o.size = canvas_sizes()[static_cast<size_t>(g.size)];
  return o;
}

int palette_size() {
  return static_cast<int>(canvas_palette().size());
}

bool held_out_combo(const Garment& g) {
  return is_held_out_combo(canvas_palette()[static_cast<size_t>(g.colour)].name, g.cls);
}

// ---------------------------------------------------------------------------------------------------------
// The evaluation prompts and what they keep out of training
// ---------------------------------------------------------------------------------------------------------
struct HeldOut {
  std::vector<EvalPrompt> prompts;
  std::set<int64_t> garments;  // keys of the "single" group's garments
  std::set<int64_t> pairs;     // pair keys of the "two" group
};

const HeldOut& held_out() {
  static const HeldOut h = [] {
    HeldOut out;
    SplitMix64 rng(kEvalSeed);
    // single: seen colour x garment combinations, each class 8 times, at a (colour, position, size) drawn.
    for (int k = 0; k < kPromptsPerGroup; ++k) {
      Garment g;
      g.cls = k % 10;
      do {
        g.colour = static_cast<int>(rng.below(palette_size()));
        g.position = static_cast<int>(rng.below(5));
        g.size = static_cast<int>(rng.below(2));
      } while (held_out_combo(g) || out.garments.count(garment_key(g)));
      out.garments.insert(garment_key(g));
      out.prompts.push_back({"single", single_caption(rng, g, true), {object_of(g)}});
    }
    // heldout: every held-out combination at every position and size (8 x 5 x 2).
    for (const ColourGarment& combo : held_out_combos())
      for (int position = 0; position < 5; ++position)
        for (int size = 0; size < 2; ++size) {
          const Garment g{combo.class_index, canvas_colour_index(combo.colour), position, size};
          out.prompts.push_back({"heldout", single_caption(rng, g, true), {object_of(g)}});
        }
    // two: pairs of allowed garments in different colours, side by side and one above the other in turn.
    auto allowed = [&](const Garment& g) { return !held_out_combo(g) && !out.garments.count(garment_key(g)); };
    for (int k = 0; k < kPromptsPerGroup; ++k) {
      Garment a, b;
      a.position = k % 2 == 0 ? kLeft : kTop;
      b.position = k % 2 == 0 ? kRight : kBottom;
      do {
        for (Garment* g : {&a, &b}) {
          g->cls = static_cast<int>(rng.below(10));
          g->colour = static_cast<int>(rng.below(palette_size()));
          g->size = static_cast<int>(rng.below(2));
        }
      } while (!allowed(a) || !allowed(b) || a.colour == b.colour || out.pairs.count(pair_key(a, b)));
      out.pairs.insert(pair_key(a, b));
      out.prompts.push_back({"two", pair_caption(rng, a, b, true, true), {object_of(a), object_of(b)}});
    }
    return out;
  }();
  return h;
}

// Draws the colour and size of a garment of known class (and position unless draw_position), until the
// garment is allowed in training: not a held-out combination, not a garment of the "single" prompts.
void draw_training_attributes(SplitMix64& rng, Garment* g, bool draw_position) {
  const HeldOut& h = held_out();
  for (int attempt = 0; attempt < kMaxDraws; ++attempt) {
    g->colour = static_cast<int>(rng.below(palette_size()));
    if (draw_position) g->position = static_cast<int>(rng.below(5));
    g->size = static_cast<int>(rng.below(2));
    if (!held_out_combo(*g) && !h.garments.count(garment_key(*g))) return;
  }
  throw Error("caption canvas: no allowed colour for class " + std::to_string(g->cls));
}

// ---------------------------------------------------------------------------------------------------------
// Pixels
// ---------------------------------------------------------------------------------------------------------
struct SourceImage {
  std::vector<uint8_t> gray;  // 28 x 28
  int cls = 0;
};

SourceImage read_source(const TrainingData& data, int64_t index) {
  const Example e = data.get(index, 0);
  const at::Tensor x = e.x.to(at::kFloat).contiguous();
  const auto a = x.accessor<float, 3>();
  SourceImage s;
  s.gray.resize(28 * 28);
  s.cls = static_cast<int>(e.label);
  for (int y = 0; y < 28; ++y)
    for (int xx = 0; xx < 28; ++xx) {  // back from [-1, 1] to the file's bytes, exactly
      const float v = (a[0][y + 2][xx + 2] + 1.0f) * 127.5f;
      s.gray[static_cast<size_t>(y * 28 + xx)] = static_cast<uint8_t>(std::lround(std::min(255.0f, std::max(0.0f, v))));
    }
  return s;
}

struct GrayImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;
  uint8_t at(int64_t x, int64_t y) const { return pixels[static_cast<size_t>(y * width + x)]; }
};

// Source coordinate of each destination pixel's centre in 1/1024 pixels (align_corners false, clamped to the
// image), for bilinear resizing in fixed point.
constexpr int64_t kFracBits = 10, kOne = int64_t{1} << kFracBits;
std::vector<int64_t> sample_points(int64_t source, int64_t dest) {
  std::vector<int64_t> points(static_cast<size_t>(dest));
  for (int64_t d = 0; d < dest; ++d) {
    const int64_t p = floor_div((2 * d + 1) * source * kOne - dest * kOne, 2 * dest);
    points[static_cast<size_t>(d)] = std::min((source - 1) * kOne, std::max<int64_t>(0, p));
  }
  return points;
}

GrayImage resize_bilinear(const GrayImage& src, int64_t width, int64_t height) {
  GrayImage out{width, height, std::vector<uint8_t>(static_cast<size_t>(width * height))};
  const std::vector<int64_t> xs = sample_points(src.width, width), ys = sample_points(src.height, height);
  for (int64_t y = 0; y < height; ++y) {
    const int64_t y0 = ys[static_cast<size_t>(y)] >> kFracBits, fy = ys[static_cast<size_t>(y)] & (kOne - 1);
    const int64_t y1 = std::min(y0 + 1, src.height - 1);
    for (int64_t x = 0; x < width; ++x) {
      const int64_t x0 = xs[static_cast<size_t>(x)] >> kFracBits, fx = xs[static_cast<size_t>(x)] & (kOne - 1);
      const int64_t x1 = std::min(x0 + 1, src.width - 1);
      const int64_t sum = src.at(x0, y0) * (kOne - fx) * (kOne - fy) + src.at(x1, y0) * fx * (kOne - fy) +
                          src.at(x0, y1) * (kOne - fx) * fy + src.at(x1, y1) * fx * fy;
      out.pixels[static_cast<size_t>(y * width + x)] =
          static_cast<uint8_t>((sum + (kOne * kOne / 2)) >> (2 * kFracBits));
    }
  }
  return out;
}

// The garment of a source image at the length of `size`: cropped to its non-zero
// pixels, then resized with its aspect kept. Empty when the image has no non-zero pixel.
GrayImage garment_pixels(const SourceImage& source, int size, int64_t canvas) {
  int64_t x0 = 28, y0 = 28, x1 = 0, y1 = 0;
  for (int64_t y = 0; y < 28; ++y)
    for (int64_t x = 0; x < 28; ++x)
      if (source.gray[static_cast<size_t>(y * 28 + x)] > 0) {
        x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x + 1), y1 = std::max(y1, y + 1);
      }
  if (x1 <= x0) return {};
  GrayImage crop{x1 - x0, y1 - y0, {}};
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x) crop.pixels.push_back(source.gray[static_cast<size_t>(y * 28 + x)]);
  const int64_t length = garment_length(canvas_sizes()[static_cast<size_t>(size)], canvas);
  const int64_t longer = std::max(crop.width, crop.height);
  const int64_t width = std::max<int64_t>(1, round_div(crop.width * length, longer));
  const int64_t height = std::max<int64_t>(1, round_div(crop.height * length, longer));
  return resize_bilinear(crop, width, height);
}

struct Region {
  int64_t x0, y0, x1, y1;
};

// Anchors in quarters of the canvas: left (1, 2), right (3, 2), top (2, 1), bottom (2, 3), centre (2, 2).
constexpr int64_t kAnchorX[] = {1, 3, 2, 2, 2}, kAnchorY[] = {2, 2, 1, 3, 2};

// The position whose anchor is nearest to a centroid given in 1/256 pixel, in integers (ties: the first).
int nearest_anchor(int64_t cx256, int64_t cy256, int64_t canvas) {
  int best = 0;
  int64_t best_d = std::numeric_limits<int64_t>::max();
  for (int p = 0; p < 5; ++p) {
    const int64_t dx = cx256 - kAnchorX[p] * canvas * 64, dy = cy256 - kAnchorY[p] * canvas * 64;
    if (dx * dx + dy * dy < best_d) best_d = dx * dx + dy * dy, best = p;
  }
  return best;
}

struct Placed {
  std::array<int64_t, 4> box{};  // of the lit pixels
  int64_t cx256 = 0, cy256 = 0;  // the intensity centroid, in 1/256 pixel
};

// Paints the tinted garment with its intensity centroid at the position's anchor plus (jx, jy), clamped into
// `region`. Returns false (painting nothing) when no pixel of the garment is lit.
bool paint(const GrayImage& garment, const Garment& g, int64_t jx, int64_t jy, const Region& region, int64_t canvas,
           std::vector<uint8_t>* pixels, Placed* placed) {
  int64_t sum = 0, sum_x2 = 0, sum_y2 = 0;  // intensity and twice its first moments (pixel centres at i + 1/2)
  for (int64_t y = 0; y < garment.height; ++y)
    for (int64_t x = 0; x < garment.width; ++x) {
      const int64_t v = garment.at(x, y);
      sum += v, sum_x2 += v * (2 * x + 1), sum_y2 += v * (2 * y + 1);
    }
  if (sum == 0) return false;
  // In half pixels (integers for an even S): 2 * x0 + sum_x2 / sum = the target, rounded to a whole pixel.
  const int64_t target_x2 = kAnchorX[g.position] * canvas / 2 + 2 * jx,
                target_y2 = kAnchorY[g.position] * canvas / 2 + 2 * jy;
  int64_t x0 = round_div(target_x2 * sum - sum_x2, 2 * sum), y0 = round_div(target_y2 * sum - sum_y2, 2 * sum);
  x0 = std::max(region.x0, std::min(x0, region.x1 - garment.width));
  y0 = std::max(region.y0, std::min(y0, region.y1 - garment.height));
  placed->cx256 = round_div((2 * x0 * sum + sum_x2) * 128, sum);
  placed->cy256 = round_div((2 * y0 * sum + sum_y2) * 128, sum);
  const auto& rgb = canvas_palette()[static_cast<size_t>(g.colour)].rgb;
  auto& box = placed->box;
  box = {canvas, canvas, 0, 0};
  for (int64_t y = 0; y < garment.height; ++y)
    for (int64_t x = 0; x < garment.width; ++x) {
      const int64_t v = garment.at(x, y);
      if (v == 0) continue;
      const int64_t cx = x0 + x, cy = y0 + y;
      uint8_t* p = pixels->data() + (cy * canvas + cx) * 3;
      for (int c = 0; c < 3; ++c) p[c] = std::max<uint8_t>(p[c], static_cast<uint8_t>((v * rgb[c] + 127) / 255));
      box[0] = std::min(box[0], cx), box[1] = std::min(box[1], cy);
      box[2] = std::max(box[2], cx + 1), box[3] = std::max(box[3], cy + 1);
    }
  return true;
}

double hue_of(double r, double g, double b) {
  const double hi = std::max({r, g, b}), lo = std::min({r, g, b}), d = hi - lo;
  if (d <= 0) return 0;
  double h;
  if (hi == r)
    h = 60.0 * std::fmod((g - b) / d, 6.0);
  else if (hi == g)
    h = 60.0 * ((b - r) / d + 2.0);
  else
    h = 60.0 * ((r - g) / d + 4.0);
  return h < 0 ? h + 360.0 : h;
}

nlohmann::ordered_json object_json(const CanvasObject& o, bool with_box) {
  nlohmann::ordered_json j;
  j["class"] = o.class_index;
  j["garment"] = canvas_garments()[static_cast<size_t>(o.class_index)].name;
  j["colour"] = o.colour;
  const auto& rgb = canvas_palette()[static_cast<size_t>(canvas_colour_index(o.colour))].rgb;
  j["rgb"] = {rgb[0], rgb[1], rgb[2]};
  j["position"] = o.position;
  j["size"] = o.size;
  if (with_box) j["box"] = {o.box[0], o.box[1], o.box[2], o.box[3]};
  return j;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------------------------
const std::vector<CanvasColour>& canvas_palette() {
  static const std::vector<CanvasColour> palette = {
      {"red", {255, 40, 40}},     {"orange", {255, 128, 0}}, {"yellow", {255, 255, 0}},
      {"green", {50, 255, 50}},   {"cyan", {0, 255, 255}},   {"blue", {40, 80, 255}},
      {"purple", {160, 50, 255}}, {"pink", {255, 80, 200}},  {"white", {255, 255, 255}}};
  return palette;
}

int canvas_colour_index(const std::string& name) {
  for (size_t i = 0; i < canvas_palette().size(); ++i)
    if (canvas_palette()[i].name == name) return static_cast<int>(i);
  return -1;
}

const std::vector<CanvasGarment>& canvas_garments() {
  static const std::vector<CanvasGarment> garments = {
      {0, "t-shirt", {{"t-shirt", "t-shirts"}, {"top", "tops"}, {"tee", "tees"}}},
      {1, "trousers", {{"trousers", "pairs of trousers", true}, {"pants", "pairs of pants", true}}},
      {2, "pullover", {{"pullover", "pullovers"}, {"sweater", "sweaters"}, {"jumper", "jumpers"}}},
      {3, "dress", {{"dress", "dresses"}}},
      {4, "coat", {{"coat", "coats"}, {"jacket", "jackets"}}},
      {5, "sandal", {{"sandal", "sandals"}}},
      {6, "shirt", {{"shirt", "shirts"}}},
      {7, "sneaker", {{"sneaker", "sneakers"}, {"trainer", "trainers"}, {"running shoe", "running shoes"}}},
      {8, "bag", {{"bag", "bags"}, {"handbag", "handbags"}}},
      {9, "ankle boot", {{"ankle boot", "ankle boots"}, {"boot", "boots"}}}};
  return garments;
}

int canvas_garment_index(const std::string& name) {
  for (const CanvasGarment& g : canvas_garments())
    if (g.name == name) return g.class_index;
  return -1;
}

const std::vector<std::string>& canvas_positions() {
  static const std::vector<std::string> positions = {"left", "right", "top", "bottom", "centre"};
  return positions;
}

PixelPoint position_anchor(const std::string& position, int64_t canvas) {
  const double s = static_cast<double>(canvas);
  if (position == "left") return {s / 4, s / 2};
  if (position == "right") return {3 * s / 4, s / 2};
  if (position == "top") return {s / 2, s / 4};
  if (position == "bottom") return {s / 2, 3 * s / 4};
  if (position == "centre") return {s / 2, s / 2};
  throw Error("caption canvas: unknown position '" + position + "' (left, right, top, bottom, centre)");
}

std::string nearest_position(double x, double y, int64_t canvas) {
  std::string best;
  double best_d = std::numeric_limits<double>::infinity();
  for (const std::string& p : canvas_positions()) {
    const PixelPoint a = position_anchor(p, canvas);
    const double d = (x - a.x) * (x - a.x) + (y - a.y) * (y - a.y);
    if (d < best_d) best_d = d, best = p;
  }
  return best;
}

int64_t position_jitter(int64_t canvas) {
  return canvas * 3 / 64;
}

const std::vector<std::string>& canvas_sizes() {
  static const std::vector<std::string> sizes = {"small", "large"};
  return sizes;
}

int64_t garment_length(const std::string& size, int64_t canvas) {
  if (size == "small") return canvas * 5 / 16;
  if (size == "large") return canvas / 2;
  throw Error("caption canvas: unknown size '" + size + "' (small, large)");
}

std::string nearest_size(int64_t longer_side, int64_t canvas) {
  const int64_t small = garment_length("small", canvas), large = garment_length("large", canvas);
  return std::abs(longer_side - small) <= std::abs(longer_side - large) ? "small" : "large";
}

std::string nearest_colour(double r, double g, double b) {
  const double hi = std::max({r, g, b}), lo = std::min({r, g, b});
  if (hi <= 0 || (hi - lo) / hi < 0.3) return "white";
  const double hue = hue_of(r, g, b);
  std::string best;
  double best_d = 1e9;
  for (const CanvasColour& c : canvas_palette()) {
    if (c.name == "white") continue;
    const double d0 = std::fabs(hue - hue_of(c.rgb[0], c.rgb[1], c.rgb[2])), d = std::min(d0, 360.0 - d0);
    if (d < best_d) best_d = d, best = c.name;
  }
  return best;
}

const std::vector<ColourGarment>& held_out_combos() {
  static const std::vector<ColourGarment> combos = {{"red", 3},  {"orange", 7}, {"yellow", 4}, {"green", 8},
                                                    {"cyan", 9}, {"blue", 0},   {"purple", 1}, {"pink", 5}};
  return combos;
}

bool is_held_out_combo(const std::string& colour, int class_index) {
  for (const ColourGarment& c : held_out_combos())
    if (c.colour == colour && c.class_index == class_index) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------------------------------------
void check_canvas_options(const CanvasOptions& options) {
  if (options.canvas < 32 || options.canvas > 512 || options.canvas % 2 != 0)
    throw Error("caption canvas: size " + std::to_string(options.canvas) + " is not an even number in 32 .. 512");
  if (!(options.two_garment_fraction >= 0 && options.two_garment_fraction <= 1))
    throw Error("caption canvas: the two-garment fraction must lie in 0 .. 1");
}

CaptionCanvasGenerator::CaptionCanvasGenerator(std::shared_ptr<TrainingData> fashion_mnist, CanvasOptions options)
    : data_(std::move(fashion_mnist)), options_(options) {
  check_canvas_options(options_);
  if (!data_ || data_->size() < 1 || data_->num_classes() != 10 ||
      data_->example_shape() != std::vector<int64_t>{1, 32, 32})
    throw Error("caption canvas: the source must be Fashion-MNIST (10 classes of 1x32x32 images)");
  held_out();  // builds the evaluation prompts once, before any thread asks
}

CanvasExample CaptionCanvasGenerator::example(int64_t index) const {
  if (index < 0) throw Error("caption canvas: negative example index " + std::to_string(index));
  const int64_t s = options_.canvas, jitter = position_jitter(s);
  SplitMix64 rng(mix_seed(options_.seed, static_cast<uint64_t>(index)));
  const bool two = rng.chance(options_.two_garment_fraction);
  const size_t count = two ? 2 : 1;
  // Drawn again (the generator going on) in the rare case a garment cannot stand where its position says: a
  // large garment with its weight at one end, stopped by the canvas's edge, its centroid nearer another anchor.
  for (int attempt = 0; attempt < kMaxDraws; ++attempt) {
    CanvasExample out;
    out.pixels.assign(static_cast<size_t>(s * s * 3), 0);
    std::vector<Garment> garments(count);
    std::vector<SourceImage> sources(count);
    std::vector<int64_t> source_index(count);
    for (size_t i = 0; i < count; ++i) {
      source_index[i] = rng.below(data_->size());
      sources[i] = read_source(*data_, source_index[i]);
      garments[i].cls = sources[i].cls;
    }
    if (two) {
      const bool side_by_side = rng.below(2) == 0;
      garments[0].position = side_by_side ? kLeft : kTop;
      garments[1].position = side_by_side ? kRight : kBottom;
      const HeldOut& h = held_out();
      int draws = 0;
      do {
        if (++draws > kMaxDraws) throw Error("caption canvas: no allowed pair of garments");
        draw_training_attributes(rng, &garments[0], false);
        draw_training_attributes(rng, &garments[1], false);
      } while (garments[0].colour == garments[1].colour || h.pairs.count(pair_key(garments[0], garments[1])));
    } else {
      draw_training_attributes(rng, &garments[0], true);
    }
    bool placed_all = true;
    for (size_t i = 0; i < count && placed_all; ++i) {
      const Garment& g = garments[i];
      Region region{0, 0, s, s};  // one garment: the canvas; two: its half
      if (two && g.position == kLeft) region.x1 = s / 2;
      if (two && g.position == kRight) region.x0 = s / 2;
      if (two && g.position == kTop) region.y1 = s / 2;
      if (two && g.position == kBottom) region.y0 = s / 2;
      const int64_t jx = rng.below(2 * jitter + 1) - jitter, jy = rng.below(2 * jitter + 1) - jitter;
      const GrayImage pixels = garment_pixels(sources[i], g.size, s);
      Placed placed;
      placed_all = !pixels.pixels.empty() && paint(pixels, g, jx, jy, region, s, &out.pixels, &placed) &&
                   (two || nearest_anchor(placed.cx256, placed.cy256, s) == g.position);
      CanvasObject o = object_of(g);
      o.source_index = source_index[i];
      o.box = placed.box;
      out.objects.push_back(o);
    }
    if (!placed_all) continue;
    // Captions name the size of a garment two times in three.
    if (two) {
      const bool size_a = rng.below(3) != 0, size_b = rng.below(3) != 0;
      out.caption = pair_caption(rng, garments[0], garments[1], size_a, size_b);
    } else {
      const bool with_size = rng.below(3) != 0;
      out.caption = single_caption(rng, garments[0], with_size);
    }
    return out;
  }
  throw Error("caption canvas: example " + std::to_string(index) + ": no garment could be placed");
}

const std::vector<EvalPrompt>& caption_eval_prompts() {
  return held_out().prompts;
}

std::string canvas_metadata_json(const CanvasExample& example, const std::string& image, int64_t canvas) {
  nlohmann::ordered_json j;
  j["image"] = image;
  j["caption"] = example.caption;
  j["objects"] = nlohmann::ordered_json::array();
  for (const CanvasObject& o : example.objects) j["objects"].push_back(object_json(o, true));
  j["canvas"] = canvas;
  return j.dump();
}

std::string eval_prompt_json(const EvalPrompt& prompt, int64_t canvas) {
  nlohmann::ordered_json j;
  j["caption"] = prompt.caption;
  j["group"] = prompt.group;
  j["objects"] = nlohmann::ordered_json::array();
  for (const CanvasObject& o : prompt.objects) j["objects"].push_back(object_json(o, false));
  j["canvas"] = canvas;
  return j.dump();
}

}  // namespace lit::train
