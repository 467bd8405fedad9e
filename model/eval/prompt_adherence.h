// Prompt adherence of text-to-image samples on the project's captioned canvases (`lit make-captions`: RGB
// canvases, black background, one or two Fashion-MNIST garments, each tinted a named colour — pixel = gray
// intensity x colour / 255 — at a named position and size). For every image of a known prompt each garment is
// measured and compared with what the prompt asked for:
//   - colour: the object pixels' mean chroma (the sum of the pixels over the sum of their brightest channels:
//     for a tinted garment exactly rgb / max(rgb), whatever the gray) -> its hue and saturation -> "by hue,
//     with white as low saturation": a chroma of saturation below 0.3 is the palette's achromatic colour
//     (white), any other the palette colour of nearest hue; the palette is the set of (colour, rgb) pairs of the
//     prompts, so no palette is hard-coded here (colours of one hue that differ only in brightness are not
//     told apart: the generator's palette has none);
//   - position: one garment: its intensity centroid (the object pixels weighted by brightness: what the
//     generator aims at the anchor) -> the nearest anchor (left, right, top, bottom, centre);
//     two garments: the canvas is cut into the halves of the prompt's relation (left|right: at the middle
//     column, top|bottom: at the middle row; the generator keeps each garment in its half), each half must
//     hold an object, and that object's centroid must lie nearest its own anchor (one garment drawn across the
//     middle fills both halves, but its halves' centroids lie nearest the centre);
//   - size: the object's bounding box, its longer side -> small or large, the threshold midway between the two
//     garment sides;
//   - class: the object's box cropped from the brightest-channel image, divided by the measured colour's
//     brightest channel (back to the garment's gray), its longer side resized to 28 and centred on 28x28 as
//     Fashion-MNIST's images are, padded to 32x32 -> the project's Fashion-MNIST classifier
//     (model/eval/fmnist_classifier.h).
// Object pixels are those whose brightest channel reaches a threshold, less specks (8-connected components of
// fewer than a few pixels); a region holds an object when it has more object pixels than a small garment's
// sparsest and fewer than a large garment's box (a gray haze over the whole region is no garment). Accuracies are
// tallied per group of the prompts file (single, heldout, two) and overall, per colour and per class. canvas_features()
// gives the classifier's 256-d features of whole canvases for a Fréchet distance between generated and real canvases
// (model/eval/frechet.h).
//
// The prompts file (JSON lines; `lit make-captions` writes eval-prompts.jsonl and the data set's
// metadata.jsonl in this schema):
//   {"image": "000000.png" (metadata only), "caption": "...", "group": "single"|"heldout"|"two" (eval only),
//    "objects": [{"class": 7, "garment": "sneaker", "colour": "red", "rgb": [255, 40, 40],
//                 "position": "left"|"right"|"top"|"bottom"|"centre", "size": "small"|"large",
//                 "box": [x0, y0, x1, y1] (metadata only)}],
//    "canvas": 64}
// Two garments: objects[0] is the left (or top) one, objects[1] the right (or bottom) one. A line without a
// group is "single" or "two" by its object count.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/eval/fmnist_classifier.h"

namespace lit {

// ---------------------------------------------------------------------------------------------------------
// Prompts
// ---------------------------------------------------------------------------------------------------------
struct PromptObject {
  int64_t class_id = 0;      // Fashion-MNIST label 0..9
  std::string garment;       // its name in the caption (for reports; may be empty)
  std::string colour;        // palette name
  std::array<int, 3> rgb{};  // the tint, 0..255
  std::string position;      // left, right, top, bottom, centre
  std::string size;          // small, large
};

struct AdherencePrompt {
  std::string caption;
  std::string group;                  // single, heldout, two (or the object count's, when the line has none)
  std::string image;                  // file name of the canvas (metadata.jsonl), empty otherwise
  std::vector<PromptObject> objects;  // 1 or 2
  int64_t canvas = 0;                 // side in pixels
  std::string where;                  // "FILE:LINE", for messages
};

// One JSON line of the schema above; `where` ("FILE:LINE") starts every error message.
AdherencePrompt parse_adherence_prompt(const std::string& line, const std::string& where);
// Every non-blank line of a prompts file. Throws a one-line lit::Error naming the file and line: unreadable,
// not JSON, a field missing or of the wrong type or value, no prompts at all.
std::vector<AdherencePrompt> read_adherence_prompts(const std::string& path);

struct PaletteColour {
  std::string name;
  std::array<int, 3> rgb{};
};
// The distinct (colour, rgb) pairs of the prompts, by name. Throws lit::Error when one name comes with two rgb
// values, or a colour is too dark to tell from the black background (brightest channel below `threshold`).
std::vector<PaletteColour> palette_of(const std::vector<AdherencePrompt>& prompts, int threshold);

// ---------------------------------------------------------------------------------------------------------
// The canvas layout `lit make-captions` draws (tools/train/caption_canvas.h, which this layer cannot include:
// tests/cli checks that the two agree), for any canvas side S
// ---------------------------------------------------------------------------------------------------------
struct CanvasLayout {
  int64_t canvas = 64;
  double small_side = 20, large_side = 32;  // a garment's longer side, pixels: S * 5 / 16 and S / 2

  static CanvasLayout for_canvas(int64_t canvas);
  double size_threshold() const { return (small_side + large_side) / 2; }
  // The intensity centroid a garment at `position` aims at, pixels (x, y): left (S/4, S/2), right (3S/4, S/2),
  // top (S/2, S/4), bottom (S/2, 3S/4), centre (S/2, S/2). lit::Error for another name.
  std::array<double, 2> anchor(const std::string& position) const;
  static const std::vector<std::string>& positions();  // left, right, top, bottom, centre
};

// ---------------------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------------------
struct AdherenceOptions {
  int threshold = 16;                 // object pixel: brightest channel >= this (0..255)
  int64_t min_component = 6;          // 8-connected specks smaller than this are not object pixels
  double min_object_fraction = 0.05;  // an object needs at least this x small_side^2 pixels (20 at 64x64)
  double max_object_fraction = 1.25;  // and at most this x large_side^2 (1280 at 64x64: not a haze over the region)
};

struct ObjectMeasurement {
  bool found = false;              // enough object pixels where the object should be
  int64_t pixels = 0;              // object pixels
  std::array<double, 3> chroma{};  // mean chroma, brightest channel 1
  double hue = 0, saturation = 0;  // of the chroma: degrees [0, 360), [0, 1]
  std::string colour;              // the nearest palette colour ("" when not found)
  double cx = 0, cy = 0;           // intensity centroid, pixels
  std::string position;            // the anchor nearest the centroid ("" when not found)
  std::array<int64_t, 4> box{};    // x0, y0, x1, y1 (exclusive)
  int64_t extent = 0;              // the box's longer side
  std::string size;                // small or large ("" when not found)
  at::Tensor crop;                 // (1, 28, 28) float32 in [0, 1]: the classifier's view; undefined when not found
  int64_t expected_class = 0;
  int64_t predicted_class = -1;  // set by classify_objects
  bool colour_ok = false, position_ok = false, size_ok = false, class_ok = false;
};

// Measures the objects of one image (uint8 (H, W, 3), H = W = the prompt's canvas) against its prompt (every
// attribute but the class: classify_objects does that). lit::Error for an image of another shape or size.
std::vector<ObjectMeasurement> measure_objects(const at::Tensor& image, const AdherencePrompt& prompt,
                                               const std::vector<PaletteColour>& palette,
                                               const AdherenceOptions& options = {});

// Runs the classifier on the crops of the objects found, in one batch, and sets predicted_class and class_ok.
void classify_objects(FmnistClassifier& classifier, const std::vector<ObjectMeasurement*>& objects);

// Whole canvases (uint8 (H, W, 3) each, any size) -> the classifier's 256-d features (N, 256) float32 on the
// CPU: the brightest channel (the garments' gray, whatever their tint), area-resized to 32x32, to [-1, 1].
at::Tensor canvas_features(FmnistClassifier& classifier, const std::vector<at::Tensor>& images);
inline constexpr const char* kCanvasFdConvention =
    "Fashion-MNIST classifier features 256-d of whole canvases: brightest channel, area-resized to 32x32; "
    "float64 stats";

// ---------------------------------------------------------------------------------------------------------
// Tallies
// ---------------------------------------------------------------------------------------------------------
struct AttributeCounts {
  int64_t images = 0, objects = 0;
  int64_t found = 0;                                    // objects found where they should be
  int64_t colour = 0, position = 0, size = 0, cls = 0;  // objects with that attribute right
  int64_t all = 0;                                      // images with every attribute of every object right
  double rate(int64_t right, int64_t of) const {
    return of ? static_cast<double>(right) / static_cast<double>(of) : 0.0;
  }
};

class AdherenceTally {
 public:
  void add(const AdherencePrompt& prompt, const std::vector<ObjectMeasurement>& objects);

  // By group in the order single, heldout, two, then any other group by name.
  std::vector<std::pair<std::string, AttributeCounts>> groups() const;
  const AttributeCounts& overall() const { return overall_; }
  // By the colour, the class and the size the prompt asked for (counting objects; images and all stay 0).
  const std::map<std::string, AttributeCounts>& per_colour() const { return per_colour_; }
  const std::map<int64_t, AttributeCounts>& per_class() const { return per_class_; }
  const std::map<std::string, AttributeCounts>& per_size() const { return per_size_; }
  // How the classifier read the found garments of each asked-for class: {asked, read} -> count (the class
  // column's errors, by what the model drew instead).
  const std::map<std::pair<int64_t, int64_t>, int64_t>& class_readings() const { return class_readings_; }

 private:
  std::map<std::string, AttributeCounts> groups_;
  AttributeCounts overall_;
  std::map<std::string, AttributeCounts> per_colour_;
  std::map<int64_t, AttributeCounts> per_class_;
  std::map<std::string, AttributeCounts> per_size_;
  std::map<std::pair<int64_t, int64_t>, int64_t> class_readings_;
};

// Where the classifier shipped with the built-in model is: model/builtin/fmnist-classifier.safetensors beside
// each place the built-in model is looked for (model/backbone/builtin_model.h), first found; nothing if none.
std::optional<std::string> find_builtin_classifier();

}  // namespace lit
