// Captioned canvases made from Fashion-MNIST: the project's own text-to-image data set (issue 19).
//
// An example is an RGB canvas (default 64x64, black) holding one or two garments. A garment is a Fashion-MNIST
// image of class c, cropped to its non-zero pixels, resized (bilinear) so that its longer side is the named
// size's length (garment_length), tinted a named colour (pixel = gray x colour / 255) and placed so that the centroid
// of its intensity lies near the named position's anchor (a few pixels of jitter, clamped so that the garment stays on
// the canvas, or in its half for two garments). Two garments stand side by side ("A on the left and B on the
// right": left and right halves) or one above the other ("A above B": top and bottom halves), never overlapping.
// A lone garment's centroid is always nearest to its own position's anchor (nearest_position): the rare one
// the canvas's edge would push nearer another anchor is drawn again.
// Captions come from varied templates with synonyms ("a red sneaker on the left", "a small blue bag above a
// large yellow dress", "two garments: green trousers on the left and a white shirt on the right").
//
// Determinism: example i is a function of (seed, i) alone, drawn with the project's own integer generator
// (splitmix64) and integer arithmetic only (resizing and tinting in fixed point), so a seed gives the same bytes
// with every compiler, standard library and CPU.
//
// Held out of every training canvas: the colour x garment combinations of held_out_combos(), and the garments
// (colour, class, position, size) and garment pairs of the evaluation prompts (caption_eval_prompts()), so
// that every evaluation prompt describes a scene no training canvas shows.
//
// The evaluator of prompt adherence uses the public constants below: the palette, the garment names, the
// position anchors and the size lengths, and nearest_colour / nearest_position / nearest_size to name what
// it measures.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tools/train/train_data.h"

namespace lit::train {

// ---------------------------------------------------------------------------------------------------------
// The vocabulary
// ---------------------------------------------------------------------------------------------------------
struct CanvasColour {
  std::string name;            // "red"
  std::array<uint8_t, 3> rgb;  // {255, 40, 40}; the largest channel of every colour is 255
};
// red, orange, yellow, green, cyan, blue, purple, pink (hues 0 .. 319 degrees, at least 30 apart) and white.
const std::vector<CanvasColour>& canvas_palette();
int canvas_colour_index(const std::string& name);  // -1 when the palette has no such colour

struct GarmentNoun {
  std::string singular, plural;  // "running shoe", "running shoes"; "trousers", "pairs of trousers"
  bool pair = false;             // a plural-only noun ("trousers", "pants"): "a pair of green trousers"
};
struct CanvasGarment {
  int class_index;                 // Fashion-MNIST label 0..9
  std::string name;                // the canonical name, as in the metadata: "t-shirt", ..., "ankle boot"
  std::vector<GarmentNoun> nouns;  // the synonyms captions use; nouns[0] is the canonical name
};
const std::vector<CanvasGarment>& canvas_garments();  // indexed by class
int canvas_garment_index(const std::string& name);    // canonical name -> class, -1 when unknown

// Positions: one garment at "left", "right", "top", "bottom" or "centre"; of two garments, objects[0] is
// "left" or "top", objects[1] "right" or "bottom".
const std::vector<std::string>& canvas_positions();
struct PixelPoint {
  double x, y;  // pixels from the canvas's top-left corner (pixel i covers [i, i + 1))
};
// Where a garment's intensity centroid is aimed: left (S/4, S/2), right (3S/4, S/2), top (S/2, S/4),
// bottom (S/2, 3S/4), centre (S/2, S/2) for a canvas of side S. Throws lit::Error for an unknown name.
PixelPoint position_anchor(const std::string& position, int64_t canvas);
// The position whose anchor is nearest to a centroid.
std::string nearest_position(double x, double y, int64_t canvas);
// Largest distance of a garment's aim from its anchor (before clamping): S * 3 / 64, 3 pixels on 64.
int64_t position_jitter(int64_t canvas);

// Sizes: the length of a garment's longer side, small S * 5 / 16 (20 pixels on 64) and large S / 2 (32). Large
// stops at half the canvas so that two large garments fit their halves without overlapping, and so that a
// large garment whose weight sits at one end (a bag below its handle) still has its centroid nearest to the
// anchor of its position when the canvas's edge stops it (at 9/16 of the canvas, 36 pixels, it does not).
const std::vector<std::string>& canvas_sizes();  // "small", "large"
// Throws lit::Error for an unknown name.
int64_t garment_length(const std::string& size, int64_t canvas);
// "small" or "large", whichever length is nearer to the longer side of a garment's box (the threshold lies
// midway, 26 pixels on 64).
std::string nearest_size(int64_t longer_side, int64_t canvas);

// The palette colour of a garment from its mean colour (e.g. the mean of its pixels): "white" when the colour
// is nearly gray (saturation below 0.3), else the chromatic colour of nearest hue.
std::string nearest_colour(double r, double g, double b);

// ---------------------------------------------------------------------------------------------------------
// Held out
// ---------------------------------------------------------------------------------------------------------
struct ColourGarment {
  std::string colour;
  int class_index;
};
// Eight colour x garment combinations no training canvas holds (one per chromatic colour, eight different
// garments): red dress, orange sneaker, yellow coat, green bag, cyan ankle boot, blue t-shirt, purple trousers,
// pink sandal.
const std::vector<ColourGarment>& held_out_combos();
bool is_held_out_combo(const std::string& colour, int class_index);

// ---------------------------------------------------------------------------------------------------------
// Examples
// ---------------------------------------------------------------------------------------------------------
struct CanvasObject {
  int class_index = 0;
  std::string colour;            // palette name
  std::string position;          // see canvas_positions()
  std::string size;              // "small" or "large"
  std::array<int64_t, 4> box{};  // x0, y0, x1, y1 (exclusive) of its non-zero pixels; zero for prompts
  int64_t source_index = -1;     // the Fashion-MNIST image it shows; -1 for prompts
};

struct CanvasExample {
  std::vector<uint8_t> pixels;  // canvas x canvas x 3, RGB, row-major
  std::string caption;
  std::vector<CanvasObject> objects;  // in the order of the schema: left/top first
};

struct CanvasOptions {
  int64_t canvas = 64;  // the side, 32 .. 512, even
  uint64_t seed = 0;
  double two_garment_fraction = 0.3;  // the share of examples with two garments, 0 .. 1
};

// Throws lit::Error naming what is wrong: a canvas side outside 32 .. 512 or odd, a fraction outside 0 .. 1.
void check_canvas_options(const CanvasOptions& options);

class CaptionCanvasGenerator {
 public:
  // fashion_mnist: a data set as load_fashion_mnist returns it (10 classes, 1x32x32 in [-1, 1], the 28x28
  // image in the middle). Throws lit::Error for invalid options or data.
  CaptionCanvasGenerator(std::shared_ptr<TrainingData> fashion_mnist, CanvasOptions options);

  // Training example `index` (>= 0): the same for the same seed and data, whatever else was generated.
  CanvasExample example(int64_t index) const;

  const CanvasOptions& options() const { return options_; }
  const TrainingData& data() const { return *data_; }

 private:
  std::shared_ptr<TrainingData> data_;
  CanvasOptions options_;
};

// ---------------------------------------------------------------------------------------------------------
// Evaluation prompts and the records of the data set's files
// ---------------------------------------------------------------------------------------------------------
struct EvalPrompt {
  std::string group;  // "single": held-out single-garment scenes of seen colour x garment combinations;
                      // "heldout": the held-out combinations (every position and size);
                      // "two": held-out two-garment scenes
  std::string caption;
  std::vector<CanvasObject> objects;  // class, colour, position, size (no box)
};
// 80 prompts of each group, the same for every seed and canvas size (the scenes they describe are kept out of
// every training canvas). Every caption names every garment's colour, garment, position and size.
const std::vector<EvalPrompt>& caption_eval_prompts();

// One JSON line (no newline) of metadata.jsonl:
// {"image": ..., "caption": ..., "objects": [{"class", "garment", "colour", "rgb", "position", "size",
// "box"}], "canvas": S}
std::string canvas_metadata_json(const CanvasExample& example, const std::string& image, int64_t canvas);
// One JSON line of eval-prompts.jsonl: {"caption", "group", "objects": [... without "box"], "canvas": S}.
std::string eval_prompt_json(const EvalPrompt& prompt, int64_t canvas);

}  // namespace lit::train
