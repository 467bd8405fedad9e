// Prompt adherence (model/eval/prompt_adherence.h) on canvases painted with known attributes: every attribute
// of a right canvas is measured right, a wrong colour, position or size is caught, the classifier's crops
// recognise real garments, the prompts file is parsed strictly, and the canvas features give a Fréchet distance
// of zero between a set and itself.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model/eval/frechet.h"
#include "model/eval/prompt_adherence.h"
#include "tests/fid/painted_canvas.h"
#include "tests/test_util.h"

namespace lit {
namespace {

using test::error_of;
using test::paint;
using test::test_anchor;
using test::test_colours;
using test::test_object;
using test::test_side;

const std::string kClassifier = std::string(LIT_FIXTURES_DIR) + "/../../model/builtin/fmnist-classifier.safetensors";

AdherencePrompt prompt_of(const std::vector<nlohmann::json>& objects, const std::string& group = "single") {
  return parse_adherence_prompt(
      nlohmann::json{{"caption", "test"}, {"group", group}, {"objects", nlohmann::json(objects)}, {"canvas", 64}}
          .dump(),
      "test:1");
}

std::vector<PaletteColour> all_colours() {
  std::vector<AdherencePrompt> prompts;
  for (const auto& c : test_colours()) prompts.push_back(prompt_of({test_object(0, c, "centre", "small")}));
  return palette_of(prompts, AdherenceOptions{}.threshold);
}

at::Tensor canvas_with(const test::Garment& g, const test::TestColour& colour, const std::string& position,
                       const std::string& size) {
  at::Tensor canvas = test::black_canvas();
  const auto a = test_anchor(position);
  paint(canvas, g.gray, colour.rgb, test_side(size), a[0], a[1]);
  return canvas;
}

TEST(PromptAdherence, ParsesTheSchema) {
  const std::string line =
      R"({"image": "000007.png", "caption": "a small red sneaker left of a large blue bag", "objects": [)"
      R"({"class": 7, "garment": "sneaker", "colour": "red", "rgb": [255, 40, 40], "position": "left", "size": "small", "box": [1, 2, 3, 4]},)"
      R"({"class": 8, "garment": "bag", "colour": "blue", "rgb": [40, 40, 255], "position": "right", "size": "large"}], "canvas": 64})";
  const AdherencePrompt p = parse_adherence_prompt(line, "f.jsonl:3");
  EXPECT_EQ(p.image, "000007.png");
  EXPECT_EQ(p.caption, "a small red sneaker left of a large blue bag");
  EXPECT_EQ(p.group, "two") << "no group: by the object count";
  EXPECT_EQ(p.canvas, 64);
  ASSERT_EQ(p.objects.size(), 2u);
  EXPECT_EQ(p.objects[0].class_id, 7);
  EXPECT_EQ(p.objects[0].garment, "sneaker");
  EXPECT_EQ(p.objects[0].rgb, (std::array<int, 3>{255, 40, 40}));
  EXPECT_EQ(p.objects[1].position, "right");
  EXPECT_EQ(p.objects[1].size, "large");
  EXPECT_EQ(p.where, "f.jsonl:3");
  EXPECT_EQ(prompt_of({test_object(1, test_colours()[0], "top", "small")}, "heldout").group, "heldout");
}

TEST(PromptAdherence, BadLinesAreRefusedOnOneLineNamingTheLine) {
  const std::string object = R"({"class": 1, "colour": "red", "rgb": [255, 0, 0], "position": "top", "size": "small"})";
  const auto line = [&](const std::string& objects, const std::string& rest = R"(, "canvas": 64)") {
    return R"({"caption": "c", "objects": )" + objects + rest + "}";
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{not json", "not JSON"},
      {"[1, 2]", "must be a JSON object"},
      {R"({"objects": [)" + object + R"(], "canvas": 64})", "\"caption\" is missing"},
      {line("[" + object + "]", ""), "\"canvas\" is missing"},
      {line("[" + object + "]", R"(, "canvas": "64")"), "\"canvas\" must be an integer"},
      {line("[]"), "one or two garments"},
      {line("[" + object + "," + object + "," + object + "]"), "one or two garments"},
      {line(R"([{"class": 10, "colour": "red", "rgb": [255, 0, 0], "position": "top", "size": "small"}])"),
       "\"class\" must be an integer 0..9"},
      {line(R"([{"class": 1, "colour": "red", "rgb": [255, 0], "position": "top", "size": "small"}])"),
       "\"rgb\" must be three integers 0..255"},
      {line(R"([{"class": 1, "colour": "red", "rgb": [256, 0, 0], "position": "top", "size": "small"}])"),
       "\"rgb\" must be three integers 0..255"},
      {line(R"([{"class": 1, "colour": "red", "rgb": [255, 0, 0], "position": "middle", "size": "small"}])"),
       "\"position\" 'middle'"},
      {line(R"([{"class": 1, "colour": "red", "rgb": [255, 0, 0], "position": "top", "size": "huge"}])"),
       "\"size\" 'huge'"},
      {line(R"([{"class": 1, "rgb": [255, 0, 0], "position": "top", "size": "small"}])"), "\"colour\" is missing"},
      {line("[" + object + "," + object + "]"), "left and right, or top and bottom"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string what = error_of([&] { parse_adherence_prompt(text, "p.jsonl:4"); });
    EXPECT_EQ(what.rfind("p.jsonl:4: ", 0), 0u) << what;
    EXPECT_NE(what.find(expected), std::string::npos) << text << " -> " << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST(PromptAdherence, ReadsAFileAndNamesItsBadLine) {
  const std::string path = test::temp_path("prompts.jsonl");
  {
    std::ofstream out(path);
    out << nlohmann::json{{"caption", "a"},
                          {"objects", nlohmann::json::array({test_object(3, test_colours()[1], "left", "large")})},
                          {"canvas", 64}}
               .dump()
        << "\r\n\n"
        << R"({"caption": "b", "objects": [], "canvas": 64})"
        << "\n";
  }
  EXPECT_NE(error_of([&] { read_adherence_prompts(path); }).find(path + ":3: \"objects\""), std::string::npos)
      << error_of([&] { read_adherence_prompts(path); });
  { std::ofstream(path) << "\n  \n"; }
  EXPECT_NE(error_of([&] { read_adherence_prompts(path); }).find("no prompts"), std::string::npos);
  EXPECT_NE(error_of([&] { read_adherence_prompts(path + ".missing"); }).find("cannot open"), std::string::npos);
  EXPECT_NE(error_of([&] { read_adherence_prompts(LIT_TEST_TMPDIR); }).find("is a folder"), std::string::npos);
  {
    std::ofstream out(path);
    for (int i = 0; i < 3; ++i)
      out << nlohmann::json{{"caption", "c"},
                            {"objects", nlohmann::json::array({test_object(i, test_colours()[i], "top", "small")})},
                            {"canvas", 64}}
                 .dump()
          << "\n";
  }
  const auto prompts = read_adherence_prompts(path);
  ASSERT_EQ(prompts.size(), 3u);
  EXPECT_EQ(prompts[2].where, path + ":3");
  EXPECT_EQ(prompts[1].objects[0].colour, test_colours()[1].name);
}

TEST(PromptAdherence, ThePaletteIsThePromptsColours) {
  const auto palette = all_colours();
  ASSERT_EQ(palette.size(), test_colours().size());
  for (const auto& c : test_colours()) {
    const auto it =
        std::find_if(palette.begin(), palette.end(), [&](const PaletteColour& p) { return p.name == c.name; });
    ASSERT_NE(it, palette.end()) << c.name;
    EXPECT_EQ(it->rgb, c.rgb);
  }
  // One name with two values, or a colour as dark as the background: refused, naming the line.
  const test::TestColour red2 = {"red", {200, 0, 0}};
  const std::vector<AdherencePrompt> conflict = {prompt_of({test_object(0, test_colours()[0], "top", "small")}),
                                                 prompt_of({test_object(0, red2, "top", "small")})};
  EXPECT_NE(error_of([&] { palette_of(conflict, 40); }).find("colour 'red' is [200, 0, 0] here but [255, 40, 40]"),
            std::string::npos)
      << error_of([&] { palette_of(conflict, 40); });
  const test::TestColour black = {"black", {20, 20, 30}};
  EXPECT_NE(error_of([&] { palette_of({prompt_of({test_object(0, black, "top", "small")})}, 40); }).find("too dark"),
            std::string::npos);
}

TEST(PromptAdherence, EveryColourPositionAndSizeOfAPaintedCanvasIsMeasuredRight) {
  const auto palette = all_colours();
  const auto garments = test::test_garments(45);
  int64_t i = 0;
  for (const auto& colour : test_colours())
    for (const std::string position : {"left", "right", "top", "bottom", "centre"})
      for (const std::string size : {"small", "large"}) {
        const test::Garment& g = garments[static_cast<size_t>(i++ % 45)];
        const AdherencePrompt p = prompt_of({test_object(std::max<int64_t>(g.label, 0), colour, position, size)});
        const auto m = measure_objects(canvas_with(g, colour, position, size), p, palette);
        ASSERT_EQ(m.size(), 1u);
        const std::string what = std::string(colour.name) + " " + position + " " + size + " garment " +
                                 std::to_string(i - 1) + ": measured " + m[0].colour + " " + m[0].position + " " +
                                 m[0].size + " (extent " + std::to_string(m[0].extent) + ")";
        EXPECT_TRUE(m[0].found) << what;
        EXPECT_TRUE(m[0].colour_ok) << what;
        EXPECT_TRUE(m[0].position_ok) << what;
        EXPECT_TRUE(m[0].size_ok) << what;
        ASSERT_TRUE(m[0].crop.defined());
        EXPECT_EQ(m[0].crop.sizes(), (std::vector<int64_t>{1, 28, 28}));
      }
}

TEST(PromptAdherence, TheCropIsTheGarmentsGrayWhateverItsTint) {
  // A palette with a dark colour (the generator's colours all reach 255 in some channel).
  const auto& white = test::test_colour("white");
  const test::TestColour brown = {"brown", {140, 70, 20}};
  const auto palette = palette_of(
      {prompt_of({test_object(0, white, "centre", "small")}), prompt_of({test_object(0, brown, "centre", "small")})},
      AdherenceOptions{}.threshold);
  const auto garments = test::test_garments(4);
  for (const auto& g : garments)
    for (const std::string size : {"small", "large"}) {
      const AdherencePrompt p = prompt_of({test_object(0, brown, "centre", size)});
      const auto a = measure_objects(canvas_with(g, white, "centre", size), p, palette);
      const auto b = measure_objects(canvas_with(g, brown, "centre", size), p, palette);
      ASSERT_TRUE(a[0].found && b[0].found);
      EXPECT_EQ(b[0].colour, "brown");
      // Brown's brightest channel is 140: a crop left tinted would be 140 / 255 of the white one.
      const double ratio = b[0].crop.mean().item<double>() / a[0].crop.mean().item<double>();
      EXPECT_NEAR(ratio, 1.0, 0.2) << size;
      EXPECT_NEAR(a[0].crop.max().item<double>(), 1.0, 0.35) << "the garment's gray, up to 1";
    }
}

TEST(PromptAdherence, AWrongColourPositionOrSizeIsCaught) {
  const auto palette = all_colours();
  const auto garments = test::test_garments(3);
  const auto& red = test::test_colour("red");
  const auto& blue = test::test_colour("blue");
  const auto& white = test::test_colour("white");
  const AdherencePrompt want = prompt_of({test_object(0, red, "left", "large")});
  // Blue where red was asked: only the colour is wrong.
  auto m = measure_objects(canvas_with(garments[0], blue, "left", "large"), want, palette);
  EXPECT_FALSE(m[0].colour_ok);
  EXPECT_EQ(m[0].colour, "blue");
  EXPECT_TRUE(m[0].position_ok && m[0].size_ok);
  // White (low saturation) is not red; neither is orange, 30 degrees of hue away, nor pink.
  m = measure_objects(canvas_with(garments[1], white, "left", "large"), want, palette);
  EXPECT_EQ(m[0].colour, "white");
  EXPECT_LT(m[0].saturation, 0.1);
  for (const char* other : {"orange", "pink"}) {
    m = measure_objects(canvas_with(garments[1], test::test_colour(other), "left", "large"), want, palette);
    EXPECT_EQ(m[0].colour, other);
    EXPECT_FALSE(m[0].colour_ok);
  }
  // On the right.
  m = measure_objects(canvas_with(garments[0], red, "right", "large"), want, palette);
  EXPECT_TRUE(m[0].colour_ok && m[0].size_ok);
  EXPECT_FALSE(m[0].position_ok);
  EXPECT_EQ(m[0].position, "right");
  // Small.
  m = measure_objects(canvas_with(garments[2], red, "left", "small"), want, palette);
  EXPECT_TRUE(m[0].colour_ok && m[0].position_ok);
  EXPECT_FALSE(m[0].size_ok);
  EXPECT_EQ(m[0].size, "small");
  // Nothing drawn (or only specks): not found, every attribute wrong.
  at::Tensor specks = test::black_canvas();
  specks[10][10].fill_(255);
  specks[40][50].fill_(255);
  m = measure_objects(specks, want, palette);
  EXPECT_FALSE(m[0].found);
  EXPECT_FALSE(m[0].colour_ok || m[0].position_ok || m[0].size_ok);
  EXPECT_FALSE(m[0].crop.defined());
  // A gray haze over the canvas (what an untrained model makes) is no garment either, nor in a half.
  const at::Tensor haze = at::full({64, 64, 3}, 120, at::kByte);
  m = measure_objects(haze, want, palette);
  EXPECT_FALSE(m[0].found || m[0].position_ok);
  const AdherencePrompt pair = prompt_of({test_object(0, red, "left", "small"), test_object(1, red, "right", "small")});
  m = measure_objects(haze, pair, palette);
  EXPECT_FALSE(m[0].found || m[1].found || m[0].position_ok || m[1].position_ok);
  // Another canvas size than the prompt's.
  EXPECT_NE(error_of([&] { measure_objects(test::black_canvas(32), want, palette); }).find("the image is 32x32"),
            std::string::npos);
}

TEST(PromptAdherence, TwoGarmentsAreFoundInTheirHalves) {
  const auto palette = all_colours();
  const auto garments = test::test_garments(8);
  const auto& red = test::test_colour("red");
  const auto& green = test::test_colour("green");
  struct Case {
    std::string first, second, size_first, size_second;
  };
  for (const Case& k : {Case{"left", "right", "small", "large"}, Case{"left", "right", "large", "large"},
                        Case{"top", "bottom", "large", "small"}, Case{"top", "bottom", "small", "small"}}) {
    const AdherencePrompt p =
        prompt_of({test_object(0, red, k.first, k.size_first), test_object(1, green, k.second, k.size_second)}, "two");
    // The halves the generator keeps each garment in.
    const bool columns = k.first == "left";
    const std::array<int64_t, 4> first_half =
        columns ? std::array<int64_t, 4>{0, 0, 32, 64} : std::array<int64_t, 4>{0, 0, 64, 32};
    const std::array<int64_t, 4> second_half =
        columns ? std::array<int64_t, 4>{32, 0, 64, 64} : std::array<int64_t, 4>{0, 32, 64, 64};
    const auto a = test_anchor(k.first), b = test_anchor(k.second);
    const auto draw = [&](const test::TestColour& c0, const test::TestColour& c1, bool second) {
      at::Tensor canvas = test::black_canvas();
      paint(canvas, garments[0].gray, c0.rgb, test_side(k.size_first), a[0], a[1], first_half);
      if (second) paint(canvas, garments[1].gray, c1.rgb, test_side(k.size_second), b[0], b[1], second_half);
      return canvas;
    };
    auto m = measure_objects(draw(red, green, true), p, palette);
    ASSERT_EQ(m.size(), 2u);
    for (int j = 0; j < 2; ++j) {
      EXPECT_TRUE(m[j].found && m[j].colour_ok && m[j].position_ok && m[j].size_ok)
          << k.first << "/" << k.second << " object " << j << ": " << m[j].colour << " " << m[j].size << " "
          << m[j].extent;
    }
    // Colours swapped: both wrong.
    m = measure_objects(draw(green, red, true), p, palette);
    EXPECT_FALSE(m[0].colour_ok || m[1].colour_ok);
    EXPECT_TRUE(m[0].position_ok && m[1].position_ok);
    // The second garment missing: its position (and the rest) wrong.
    m = measure_objects(draw(red, green, false), p, palette);
    EXPECT_TRUE(m[0].position_ok && m[0].colour_ok);
    EXPECT_FALSE(m[1].found || m[1].position_ok || m[1].colour_ok);
  }
  // Both garments on one side: the other half is empty.
  const AdherencePrompt p =
      prompt_of({test_object(0, red, "left", "small"), test_object(1, green, "right", "small")}, "two");
  at::Tensor canvas = test::black_canvas();
  paint(canvas, garments[0].gray, red.rgb, 20, 16, 16, {0, 0, 32, 32});
  paint(canvas, garments[1].gray, green.rgb, 20, 16, 48, {0, 32, 32, 64});
  auto m = measure_objects(canvas, p, palette);
  EXPECT_TRUE(m[0].found);
  EXPECT_FALSE(m[1].found || m[1].position_ok);
  // One above the other where left and right were asked: both halves hold garment pixels, but their
  // centroids lie nearest the centre, not the left and right anchors.
  canvas = test::black_canvas();
  paint(canvas, garments[0].gray, red.rgb, 20, 32, 16);
  paint(canvas, garments[1].gray, green.rgb, 20, 32, 48);
  m = measure_objects(canvas, p, palette);
  EXPECT_TRUE(m[0].found && m[1].found);
  EXPECT_FALSE(m[0].position_ok || m[1].position_ok) << m[0].position << " " << m[1].position;
}

TEST(PromptAdherence, TheClassifierRecognisesPaintedGarments) {
  if (!test::have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  LoadedFmnistClassifier classifier = load_fmnist_classifier(kClassifier);
  const auto palette = all_colours();
  const auto garments = test::test_garments(60);
  std::vector<std::vector<ObjectMeasurement>> measured;
  std::vector<AdherencePrompt> prompts;
  for (size_t i = 0; i < garments.size(); ++i) {
    const auto& colour = test_colours()[i % test_colours().size()];
    const std::string position = CanvasLayout::positions()[i % 5];
    const std::string size = i % 2 ? "large" : "small";
    prompts.push_back(prompt_of({test_object(garments[i].label, colour, position, size)}));
    measured.push_back(measure_objects(canvas_with(garments[i], colour, position, size), prompts.back(), palette));
  }
  std::vector<ObjectMeasurement*> all;
  for (auto& m : measured) all.push_back(&m[0]);
  classify_objects(classifier.model, all);
  AdherenceTally tally;
  for (size_t i = 0; i < measured.size(); ++i) tally.add(prompts[i], measured[i]);
  const AttributeCounts& c = tally.overall();
  EXPECT_EQ(c.images, 60);
  EXPECT_EQ(c.colour, 60);
  EXPECT_EQ(c.position, 60);
  EXPECT_EQ(c.size, 60);
  // The classifier is ~90 % right on Fashion-MNIST; on crops of small garments scaled back up, a little less.
  EXPECT_GE(c.cls, 48) << "class right on " << c.cls << " of 60";
  // Asked for another class than the garment's: wrong.
  for (auto* m : all) m->expected_class = (m->expected_class + 5) % 10;
  classify_objects(classifier.model, all);
  int64_t right = 0;
  for (auto* m : all) right += m->class_ok;
  EXPECT_LE(right, 6);
}

TEST(PromptAdherence, TalliesByGroupColourAndClass) {
  const auto& c = test_colours();
  AdherenceTally tally;
  const AdherencePrompt a = prompt_of({test_object(2, c[0], "left", "small")}, "single");
  const AdherencePrompt b = prompt_of({test_object(3, c[1], "top", "large")}, "heldout");
  const AdherencePrompt two =
      prompt_of({test_object(2, c[0], "left", "small"), test_object(4, c[1], "right", "small")}, "two");
  ObjectMeasurement right;
  right.found = right.colour_ok = right.position_ok = right.size_ok = right.class_ok = true;
  ObjectMeasurement wrong_colour = right;
  wrong_colour.colour_ok = false;
  tally.add(a, {right});
  tally.add(a, {wrong_colour});
  tally.add(b, {right});
  tally.add(two, {right, wrong_colour});
  const auto groups = tally.groups();
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].first, "single");
  EXPECT_EQ(groups[1].first, "heldout");
  EXPECT_EQ(groups[2].first, "two");
  EXPECT_EQ(groups[0].second.images, 2);
  EXPECT_EQ(groups[0].second.colour, 1);
  EXPECT_EQ(groups[0].second.all, 1);
  EXPECT_EQ(groups[2].second.objects, 2);
  EXPECT_EQ(groups[2].second.all, 0);
  EXPECT_EQ(tally.overall().images, 4);
  EXPECT_EQ(tally.overall().objects, 5);
  EXPECT_EQ(tally.overall().colour, 3);
  EXPECT_EQ(tally.overall().found, 5);
  EXPECT_EQ(tally.per_colour().at(c[0].name).objects, 3);
  EXPECT_EQ(tally.per_colour().at(c[0].name).colour, 2);
  EXPECT_EQ(tally.per_colour().at(c[1].name).colour, 1);
  EXPECT_EQ(tally.per_class().at(2).objects, 3);
  EXPECT_EQ(tally.per_class().at(4).colour, 0);
  EXPECT_THROW(tally.add(two, {right}), Error);
}

TEST(PromptAdherence, TalliesBySizeAndTheClassifiersReadings) {
  const auto& c = test_colours();
  AdherenceTally tally;
  const AdherencePrompt coat = prompt_of({test_object(4, c[0], "left", "small")}, "single");
  const AdherencePrompt pair =
      prompt_of({test_object(4, c[0], "left", "large"), test_object(7, c[1], "right", "small")}, "two");
  ObjectMeasurement as_coat;
  as_coat.found = as_coat.colour_ok = as_coat.position_ok = as_coat.size_ok = as_coat.class_ok = true;
  as_coat.predicted_class = 4;
  ObjectMeasurement as_pullover = as_coat;
  as_pullover.class_ok = false;
  as_pullover.predicted_class = 2;
  ObjectMeasurement missing;  // not found: no reading
  tally.add(coat, {as_pullover});
  tally.add(coat, {as_coat});
  tally.add(pair, {as_pullover, missing});
  EXPECT_EQ(tally.per_size().at("small").objects, 3);
  EXPECT_EQ(tally.per_size().at("small").cls, 1);
  EXPECT_EQ(tally.per_size().at("large").objects, 1);
  EXPECT_EQ(tally.per_size().at("large").cls, 0);
  const auto& r = tally.class_readings();
  EXPECT_EQ(r.size(), 2u);
  EXPECT_EQ(r.at({4, 2}), 2);
  EXPECT_EQ(r.at({4, 4}), 1);
  EXPECT_EQ(r.count({7, -1}), 0u);
}

TEST(PromptAdherence, CanvasFeaturesGiveAFrechetDistance) {
  LoadedFmnistClassifier classifier = load_fmnist_classifier(kClassifier);
  const auto garments = test::test_garments(40);
  std::vector<at::Tensor> left, centre;
  for (size_t i = 0; i < garments.size(); ++i) {
    const auto& colour = test_colours()[i % test_colours().size()];
    left.push_back(canvas_with(garments[i], colour, "left", "small"));
    centre.push_back(canvas_with(garments[i], colour, "centre", "large"));
  }
  const at::Tensor a = canvas_features(classifier.model, left);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{40, FmnistClassifierImpl::kFeatureDim}));
  const at::Tensor b = canvas_features(classifier.model, centre);
  const double same = frechet_distance(compute_statistics(a), compute_statistics(a)).distance;
  const double other = frechet_distance(compute_statistics(a), compute_statistics(b)).distance;
  EXPECT_NEAR(same, 0.0, 1e-6);
  EXPECT_GT(other, 1.0) << "small garments on the left against large ones in the middle";
  EXPECT_THROW(canvas_features(classifier.model, {}), Error);
}

TEST(PromptAdherence, FindsTheBuiltInClassifier) {
  const auto found = find_builtin_classifier();
  ASSERT_TRUE(found.has_value());
  EXPECT_TRUE(std::filesystem::equivalent(*found, kClassifier));
}

}  // namespace
}  // namespace lit
