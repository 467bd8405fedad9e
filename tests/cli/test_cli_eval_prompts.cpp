// `lit eval-prompts` as a user runs it: painted canvases scored right (and wrong ones wrong) from a folder in
// either naming, the canvases of `lit make-captions` against their own metadata (the ceiling), images generated
// through the pipeline equal to `lit generate`'s and scored the same, every bad input as one line; and the
// evaluator's layout and colour rule agree with the generator's (tools/train/caption_canvas.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "model/eval/prompt_adherence.h"
#include "tests/fid/painted_canvas.h"
#include "tests/test_util.h"
#include "tools/train/caption_canvas.h"
#include "weights/image_io.h"

namespace fs = std::filesystem;

namespace lit {
namespace {

using test::fixture;
using test::fresh_temp_dir;
using test::run_command;
using test::temp_path;
using test::test_colour;
using test::test_object;

const std::string kLit = LIT_CLI_PATH;

bool one_line(const std::string& s) {
  return !s.empty() && s.find('\n') == s.size() - 1;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::string write_lines(const std::string& path, const std::vector<nlohmann::json>& lines) {
  std::ofstream out(path);
  for (const auto& l : lines) out << l.dump() << "\n";
  return path;
}

// Single-garment scenes: one per palette colour, positions and sizes in turn.
struct Scene {
  std::string colour, position, size;
};
std::vector<Scene> scenes() {
  std::vector<Scene> out;
  for (size_t i = 0; i < test::test_colours().size(); ++i)
    out.push_back({test::test_colours()[i].name, CanvasLayout::positions()[i % 5], i % 2 ? "large" : "small"});
  return out;
}

at::Tensor painted(const test::Garment& g, const std::string& colour, const std::string& position,
                   const std::string& size) {
  at::Tensor canvas = test::black_canvas();
  const auto a = test::test_anchor(position);
  test::paint(canvas, g.gray, test_colour(colour).rgb, test::test_side(size), a[0], a[1]);
  return canvas;
}

nlohmann::json prompt_line(const Scene& s, int64_t cls, const std::string& image = "") {
  nlohmann::json j = {{"caption", "a " + s.size + " " + s.colour + " garment " + s.position},
                      {"group", "single"},
                      {"objects", nlohmann::json::array({test_object(cls, test_colour(s.colour), s.position, s.size)})},
                      {"canvas", 64}};
  if (!image.empty()) j["image"] = image;
  return j;
}

TEST(CliEvalPrompts, PaintedCanvasesScoreRightAndWrongOnesWrong) {
  const auto garments = test::test_garments(12);
  const auto list = scenes();
  const int64_t p = static_cast<int64_t>(list.size());
  // metadata.jsonl style: every prompt names its image.
  const std::string dir = fresh_temp_dir("named");
  fs::create_directories(dir);
  std::vector<nlohmann::json> lines;
  for (int64_t i = 0; i < p; ++i) {
    const Scene& s = list[static_cast<size_t>(i)];
    const std::string name = "img" + std::to_string(i) + ".png";
    write_image(dir + "/" + name, painted(garments[static_cast<size_t>(i)], s.colour, s.position, s.size));
    lines.push_back(prompt_line(s, std::max<int64_t>(garments[static_cast<size_t>(i)].label, 0), name));
  }
  const std::string metadata = write_lines(temp_path("metadata.jsonl"), lines);
  const std::string json = temp_path("named.json");
  auto r = run_command(kLit + " eval-prompts -q --prompts " + metadata + " --images " + dir + " --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("accuracy (%)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("by colour (%)"), std::string::npos) << r.output;
  auto j = read_json(json);
  EXPECT_EQ(j["evaluated_images"], p);
  EXPECT_EQ(j["groups"]["overall"]["colour"], 1.0);
  EXPECT_EQ(j["groups"]["overall"]["position"], 1.0);
  EXPECT_EQ(j["groups"]["overall"]["size"], 1.0);
  EXPECT_EQ(j["palette"].size(), test::test_colours().size());
  // By size, and the classifier's reading of every found garment by the class asked for.
  EXPECT_NE(r.output.find("by size (%)"), std::string::npos) << r.output;
  int64_t sized = 0, read = 0;
  for (const auto& [size, counts] : j["per_size"].items()) sized += counts["objects"].get<int64_t>();
  for (const auto& [asked, row] : j["class_readings"].items())
    for (const auto& [as, n] : row.items()) read += n.get<int64_t>();
  EXPECT_EQ(sized, p);
  EXPECT_EQ(read, p);  // every garment found (position 1.0 above)

  // lit generate's naming, two images a prompt (inferred from the folder): image i is for prompt i mod p. The
  // second round has every colour shifted by one in the palette: colour right on exactly half.
  const std::string numbered = fresh_temp_dir("numbered");
  fs::create_directories(numbered);
  for (int64_t i = 0; i < 2 * p; ++i) {
    const Scene& s = list[static_cast<size_t>(i % p)];
    const std::string colour = i < p ? s.colour : list[static_cast<size_t>((i + 1) % p)].colour;
    char name[32];
    std::snprintf(name, sizeof name, "%06lld.png", static_cast<long long>(i));
    write_image(numbered + "/" + name, painted(garments[static_cast<size_t>(i % p)], colour, s.position, s.size));
  }
  std::vector<nlohmann::json> plain;
  for (int64_t i = 0; i < p; ++i)
    plain.push_back(
        prompt_line(list[static_cast<size_t>(i)], std::max<int64_t>(garments[static_cast<size_t>(i)].label, 0)));
  const std::string prompts = write_lines(temp_path("eval-prompts.jsonl"), plain);
  const std::string details = temp_path("details.jsonl");
  r = run_command(kLit + " eval-prompts -q --prompts " + prompts + " --images " + numbered + " --json " + json +
                  " --details " + details);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  j = read_json(json);
  EXPECT_EQ(j["per_prompt"], 2);
  EXPECT_EQ(j["evaluated_images"], 2 * p);
  EXPECT_DOUBLE_EQ(j["groups"]["single"]["colour"].get<double>(), 0.5);
  EXPECT_EQ(j["groups"]["single"]["position"], 1.0);
  EXPECT_EQ(j["per_colour"]["red"]["objects"], 2);
  EXPECT_DOUBLE_EQ(j["per_colour"]["red"]["colour"].get<double>(), 0.5);
  std::ifstream in(details);
  int64_t count = 0, wrong = 0;
  for (std::string line; std::getline(in, line); ++count) {
    const auto d = nlohmann::json::parse(line);
    wrong += !d["objects"][0]["ok"]["colour"].get<bool>();
    if (count == p) {
      EXPECT_EQ(d["objects"][0]["measured"]["colour"], list[1].colour) << line;
    }
  }
  EXPECT_EQ(count, 2 * p);
  EXPECT_EQ(wrong, p);
  // --per-prompt 1 evaluates the first round only.
  r = run_command(kLit + " eval-prompts -q --prompts " + prompts + " --images " + numbered + " --per-prompt 1 --json " +
                  json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_json(json)["groups"]["single"]["colour"], 1.0);
}

TEST(CliEvalPrompts, BadInputIsOneLine) {
  const auto garments = test::test_garments(2);
  const Scene s = scenes()[0];
  const std::string dir = fresh_temp_dir("bad");
  fs::create_directories(dir);
  for (int i = 0; i < 3; ++i)
    write_image(dir + "/00000" + std::to_string(i) + ".png", painted(garments[0], s.colour, s.position, s.size));
  write_image(dir + "/small.png", at::zeros({32, 32, 3}, at::kByte));
  const std::string two = write_lines(temp_path("two.jsonl"), {prompt_line(s, 0), prompt_line(s, 1)});
  const std::string one = write_lines(temp_path("one.jsonl"), {prompt_line(s, 0)});
  const std::string named_small = write_lines(temp_path("small.jsonl"), {prompt_line(s, 0, "small.png")});
  const std::string named_missing = write_lines(temp_path("missing.jsonl"), {prompt_line(s, 0, "nothing.png")});
  const std::string bad_json = temp_path("bad.jsonl");
  std::ofstream(bad_json) << prompt_line(s, 0).dump() << "\n{\"caption\": \"x\", \"objects\": 3, \"canvas\": 64}\n";
  const std::string not_classifier = temp_path("not_classifier.safetensors");
  std::ofstream(not_classifier) << "garbage";
  const std::string ep = kLit + " eval-prompts -q ";
  struct Case {
    std::string args, expected;
  };
  const std::vector<Case> cases = {
      {"--images " + dir, "--prompts is required"},
      {"--prompts " + temp_path("absent.jsonl") + " --images " + dir, "cannot open"},
      {"--prompts " + bad_json + " --images " + dir, bad_json + ":2: \"objects\""},
      {"--prompts " + one, "give --images DIR"},
      {"--prompts " + one + " --images " + dir + " --model x.safetensors", "exclude each other"},
      {"--prompts " + two + " --images " + dir, "holds 3 numbered PNGs"},
      {"--prompts " + two + " --images " + dir + " --per-prompt 2", "000003.png is missing"},
      {"--prompts " + named_small + " --images " + dir, "small.png: 32x32, but " + named_small + ":1 asks for a 64x64"},
      {"--prompts " + named_missing + " --images " + dir, "nothing.png does not exist"},
      {"--prompts " + named_small + " --images " + dir + " --per-prompt 2", "one image each"},
      {"--prompts " + one + " --images " + temp_path("no_such_folder"), "not a folder"},
      {"--prompts " + one + " --images " + dir + " --text-encoder t5", "--text-encoder goes with --model"},
      {"--prompts " + one + " --images " + dir + " --real " + temp_path("no_real"), "--real"},
      {"--prompts " + one + " --images " + dir + " --classifier " + not_classifier, not_classifier},
      {"--prompts " + one + " --images " + dir + " --threshold 0", "--threshold must be 1..255"},
      {"--prompts " + one + " --images " + dir + " --json " + one, "--json"},
      {"--prompts " + one + " --model " + temp_path("absent.safetensors"), "absent.safetensors"},
  };
  for (const Case& c : cases) {
    const auto r = run_command(ep + c.args);
    EXPECT_EQ(r.exit_code, c.expected == "--prompts is required" ? 106 : 1) << c.args << "\n" << r.output;
    EXPECT_TRUE(one_line(r.output)) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expected), std::string::npos) << c.args << "\n" << r.output;
  }
}

TEST(CliEvalPrompts, GeneratesThroughThePipelineAsLitGenerateDoes) {
  const std::string model = fixture("t2i/pixart_tiny/pixart_tiny.pth");
  const std::string t5 = fixture("t2i/t5_tiny/single");
  const std::string vae = fixture("vae/tiny_sd_vae");
  const auto list = scenes();
  const std::string prompts = write_lines(temp_path("gen.jsonl"), {prompt_line(list[0], 3), prompt_line(list[5], 7)});
  const std::string captions = temp_path("captions.txt");
  auto r = run_command(kLit + " eval-prompts -q --prompts " + prompts + " --captions-out " + captions);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  {
    std::ifstream in(captions);
    std::string a, b, c;
    std::getline(in, a);
    std::getline(in, b);
    EXPECT_EQ(a, prompt_line(list[0], 3)["caption"]);
    EXPECT_EQ(b, prompt_line(list[5], 7)["caption"]);
    EXPECT_FALSE(std::getline(in, c));
  }
  const std::string saved = fresh_temp_dir("gen_saved");
  const std::string json = temp_path("gen.json");
  const std::string common = " --text-encoder " + t5 + " --vae " + vae + " --steps 2 --seed 5 --batch-size 3";
  r = run_command(kLit + " eval-prompts -q --prompts " + prompts + " --model " + model + common +
                  " --per-prompt 2 --save-images " + saved + " --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto generated = read_json(json);
  EXPECT_EQ(generated["evaluated_images"], 4);
  EXPECT_EQ(generated["groups"]["single"]["objects"], 4);

  // lit generate with the captions makes the same images, and scoring its folder gives the same numbers.
  const std::string out = fresh_temp_dir("gen_cli");
  r = run_command(kLit + " generate -q --model " + model + common + " --prompts-file " + captions + " -n 4 -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int i = 0; i < 4; ++i) {
    const std::string name = "/00000" + std::to_string(i) + ".png";
    EXPECT_TRUE(at::equal(read_image(saved + name), read_image(out + name))) << name;
  }
  r = run_command(kLit + " eval-prompts -q --prompts " + prompts + " --images " + out + " --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto folder = read_json(json);
  EXPECT_EQ(folder["per_prompt"], 2);
  EXPECT_EQ(folder["groups"], generated["groups"]);
  EXPECT_EQ(folder["per_class"], generated["per_class"]);

  // --null-caption learned (the model's y_embedding as the unconditional branch) as lit generate does it:
  // the same images as lit generate --null-caption learned, and not those of the T5 null caption.
  const std::string learned = fresh_temp_dir("gen_learned"), learned_cli = fresh_temp_dir("gen_learned_cli");
  r = run_command(kLit + " eval-prompts -q --prompts " + prompts + " --model " + model + common +
                  " --per-prompt 2 --null-caption learned --save-images " + learned);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(kLit + " generate -q --model " + model + common + " --null-caption learned --prompts-file " +
                  captions + " -n 4 -o " + learned_cli);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(at::equal(read_image(learned + "/000001.png"), read_image(learned_cli + "/000001.png")));
  EXPECT_FALSE(at::equal(read_image(learned + "/000001.png"), read_image(saved + "/000001.png")));
}

TEST(CliEvalPrompts, MakeCaptionsCanvasesAgainstTheirMetadataAreTheCeiling) {
  if (!test::have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const std::string dir = fresh_temp_dir("canvases");
  auto r = run_command(kLit + " make-captions -o " + dir + " -n 120 --split t10k");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string json = temp_path("ceiling.json");
  r = run_command(kLit + " eval-prompts -q --prompts " + dir + "/metadata.jsonl --images " + dir + " --real " + dir +
                  " --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("FD-FMNIST-canvas ("), std::string::npos) << r.output;
  const auto j = read_json(json);
  const auto& overall = j["groups"]["overall"];
  EXPECT_EQ(j["evaluated_images"], 120);
  EXPECT_GT(j["groups"]["two"]["images"].get<int>(), 0) << "some canvases hold two garments";
  EXPECT_EQ(overall["colour"], 1.0);
  EXPECT_EQ(overall["position"], 1.0);
  EXPECT_EQ(overall["size"], 1.0);
  // The classifier is 91.5 % right on Fashion-MNIST's t10k images; on the garments cropped back from canvases
  // (resized twice) about 87 % on 10,000 canvases.
  EXPECT_GE(overall["class"].get<double>(), 0.75);
  EXPECT_LT(overall["class"].get<double>(), 1.0);
  // The same canvases against themselves: no distance.
  EXPECT_NEAR(j["fd_fmnist_canvas"]["value"].get<double>(), 0.0, 1e-3);
  // Its evaluation prompts parse (the schema of both files is the evaluator's).
  r = run_command(kLit + " eval-prompts -q --prompts " + dir + "/eval-prompts.jsonl --captions-out " +
                  temp_path("eval_captions.txt"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(CliEvalPrompts, LayoutAndColourRuleAgreeWithTheGenerator) {
  for (int64_t canvas : {32, 64, 96, 128, 200}) {
    const CanvasLayout layout = CanvasLayout::for_canvas(canvas);
    EXPECT_EQ(layout.small_side, static_cast<double>(train::garment_length("small", canvas))) << canvas;
    EXPECT_EQ(layout.large_side, static_cast<double>(train::garment_length("large", canvas))) << canvas;
    for (const std::string& p : train::canvas_positions()) {
      const auto mine = layout.anchor(p);
      const train::PixelPoint theirs = train::position_anchor(p, canvas);
      EXPECT_EQ(mine[0], theirs.x) << p << " " << canvas;
      EXPECT_EQ(mine[1], theirs.y) << p << " " << canvas;
    }
  }
  EXPECT_EQ(CanvasLayout::positions(), train::canvas_positions());
  // A solid patch of any colour is named as the generator names that colour, with its palette.
  std::vector<PaletteColour> palette;
  for (const auto& c : train::canvas_palette()) palette.push_back({c.name, {c.rgb[0], c.rgb[1], c.rgb[2]}});
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> channel(0, 255);
  const nlohmann::json object = test_object(0, test_colour("red"), "centre", "small");
  const AdherencePrompt prompt = parse_adherence_prompt(
      nlohmann::json{{"caption", "c"}, {"objects", nlohmann::json::array({object})}, {"canvas", 64}}.dump(), "t:1");
  for (int trial = 0; trial < 300; ++trial) {
    std::array<int, 3> rgb = {channel(rng), channel(rng), 255};
    std::shuffle(rgb.begin(), rgb.end(), rng);
    at::Tensor canvas = test::black_canvas();
    canvas.narrow(0, 24, 16).narrow(1, 24, 16).copy_(at::tensor({rgb[0], rgb[1], rgb[2]}, at::kByte));
    const auto m = measure_objects(canvas, prompt, palette);
    EXPECT_EQ(m[0].colour, train::nearest_colour(rgb[0], rgb[1], rgb[2]))
        << rgb[0] << " " << rgb[1] << " " << rgb[2] << " hue " << m[0].hue << " saturation " << m[0].saturation;
  }
}

}  // namespace
}  // namespace lit
