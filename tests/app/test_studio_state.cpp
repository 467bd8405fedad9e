// lit-studio's state without a window: settings <-> PNG parameters, history, recent files, the file
// browser's listings, image fitting and seeds.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "app/state/studio_state.h"
#include "common/error.h"
#include "model/backbone/builtin_model.h"
#include "tests/test_util.h"
#include "weights/image_io.h"

namespace fs = std::filesystem;

namespace lit::studio {
namespace {

using test::temp_path;

// What the built-in Fashion-MNIST model reports once loaded.
ModelInfo fashion_model() {
  ModelInfo m;
  m.path = "/somewhere/model/builtin/lit-fmnist.safetensors";
  m.architecture = "custom: 32x32x1 input, patch 2 (256 tokens), 6 blocks, width 256, 2 linear heads";
  m.num_classes = 10;
  m.classes.names = fashion_mnist_class_names();
  m.classes.source = "checkpoint metadata";
  m.latent_size = 32;
  m.channels = 1;
  m.image_size = 32;
  m.device = "cpu";
  m.dtype = "fp32";
  return m;
}

Settings some_settings() {
  Settings s;
  s.conditioning = {Conditioning::Kind::Class, 7};
  s.sampler = "ddim";
  s.steps = 37;
  s.eta = 0.5;
  s.cfg_scale = 2.5;
  s.cfg_all_channels = true;
  s.seed = 1000;
  s.dtype = "bf16";
  return s;
}

// ---------------------------------------------------------------------------------------------------------
// Settings <-> parameters
// ---------------------------------------------------------------------------------------------------------
TEST(StudioParams, SettingsRoundTripThroughThePngText) {
  const ModelInfo model = fashion_model();
  const Settings s = some_settings();
  const GenerationParams p = image_params(s, model, s.seed, 3);
  EXPECT_EQ(p.prompt, "Sneaker");
  EXPECT_EQ(p.get("Seed"), "1003");
  EXPECT_EQ(p.get("Run seed"), "1000");
  EXPECT_EQ(p.get("Class"), "7");
  EXPECT_EQ(p.get("Size"), "32x32");
  EXPECT_EQ(p.get("Model"), "lit-fmnist.safetensors");
  EXPECT_FALSE(p.get("VAE"));

  const GenerationParams back = parse_generation_params(format_generation_params(p));
  ASSERT_EQ(back, p);
  const RestoredSettings r = settings_from_params(back, Settings{}, &model);
  EXPECT_TRUE(r.notes.empty()) << r.notes.front();
  Settings want = s;
  want.seed = 1003;  // the image's own seed: it comes back as image 0
  EXPECT_EQ(r.settings, want);
}

TEST(StudioParams, FieldsAreThoseOfLitGenerateInItsOrder) {
  Settings s = some_settings();
  ModelInfo model = fashion_model();
  model.vae_path = "/vae/sd-vae-ft-ema/";
  std::vector<std::string> keys;
  for (const auto& [k, v] : image_params(s, model, 5, 0).fields) keys.push_back(k);
  EXPECT_EQ(keys,
            (std::vector<std::string>{"Steps", "Sampler", "CFG scale", "Seed", "Size", "Model", "Class", "VAE",
                                      "Guidance channels", "Eta", "Dtype", "Architecture", "Run seed", "Image index"}));
  EXPECT_EQ(image_params(s, model, 5, 0).get("VAE"), "sd-vae-ft-ema");
  s.conditioning.kind = Conditioning::Kind::Unconditional;
  const GenerationParams u = image_params(s, model, 5, 0);
  EXPECT_EQ(u.prompt, "unconditional");
  EXPECT_EQ(u.get("Class"), "unconditional");
  EXPECT_EQ(u.get("CFG scale"), "1");
}

TEST(StudioParams, RestoresAnImageWrittenByLitGenerate) {
  // The text `lit generate --class Sneaker --sampler dpm++2m --steps 20 --seed 5 -n 3` writes for image 2.
  const std::string text =
      "Sneaker\n"
      "Steps: 20, Sampler: dpm++2m, CFG scale: 4, Seed: 7, Size: 32x32, Model: lit-fmnist.safetensors, Class: 7, "
      "Guidance channels: dit, Dtype: fp32, Architecture: \"custom: 32x32x1 input, patch 2 (256 tokens), 6 blocks\", "
      "Run seed: 5, Image index: 2";
  const std::string png = temp_path("lit_generate.png");
  ImageWriteOptions wo;
  wo.text.emplace_back("parameters", text);
  write_image(png, at::zeros({32, 32, 1}, at::kByte), wo);

  const ModelInfo model = fashion_model();
  Settings base;
  base.steps = 250;
  base.sampler = "ddpm";
  base.random_seed = true;
  base.device = "cpu";
  std::vector<std::string> notes;
  const HistoryEntry e = open_image(png, base, &model, &notes);
  EXPECT_TRUE(notes.empty()) << notes.front();
  EXPECT_EQ(e.settings.steps, 20);
  EXPECT_EQ(e.settings.sampler, "dpm++2m");
  EXPECT_EQ(e.settings.cfg_scale, 4.0);
  EXPECT_EQ(e.settings.seed, 7u);
  EXPECT_FALSE(e.settings.random_seed);
  EXPECT_EQ(e.settings.conditioning, (Conditioning{Conditioning::Kind::Class, 7}));
  EXPECT_EQ(e.pixels.sizes(), (at::IntArrayRef{32, 32, 3}));
  EXPECT_EQ(read_png_params(png).get("Run seed"), "5");
}

TEST(StudioParams, ForeignAndPartialParametersGiveNotesNotFailures) {
  const ModelInfo model = fashion_model();
  // A web-UI style text: the prompt is the class name, the sampler spelled its way, other model and size.
  GenerationParams p = parse_generation_params(
      "ankle boot\nSteps: 12, Sampler: DPM++ 2M, CFG scale: 3, Seed: 42, Size: 512x512, "
      "Model: sd15");
  RestoredSettings r = settings_from_params(p, Settings{}, &model);
  EXPECT_EQ(r.settings.sampler, "dpm++2m");
  EXPECT_EQ(r.settings.steps, 12);
  EXPECT_EQ(r.settings.conditioning.class_id, 9);
  EXPECT_EQ(r.notes.size(), 2u);  // size and model differ

  p = parse_generation_params("teapot\nSteps: 5000, Sampler: Euler a, Seed: x1");
  r = settings_from_params(p, Settings{}, &model);
  EXPECT_EQ(r.settings.steps, Settings{}.steps);
  EXPECT_EQ(r.settings.sampler, Settings{}.sampler);
  EXPECT_GE(r.notes.size(), 4u);  // steps, sampler, seed, class
  EXPECT_THROW(settings_from_params(GenerationParams{}, Settings{}, &model), Error);

  const std::string plain = temp_path("plain.png");
  write_image(plain, at::zeros({4, 4, 3}, at::kByte));
  EXPECT_THROW(read_png_params(plain), Error);
  std::vector<std::string> notes;
  const HistoryEntry e = open_image(plain, some_settings(), &model, &notes);
  EXPECT_EQ(e.settings, some_settings());
  EXPECT_EQ(notes.size(), 1u);
  EXPECT_THROW(open_image(temp_path("missing.png"), Settings{}, &model, nullptr), Error);
}

TEST(StudioParams, ValidationNamesTheSetting) {
  Settings s;
  EXPECT_NO_THROW(validate_settings(s));
  s.steps = 0;
  EXPECT_THROW(validate_settings(s), Error);
  s = Settings{};
  s.sampler = "euler";
  EXPECT_THROW(validate_settings(s), Error);
  s = Settings{};
  s.dtype = "int8";
  EXPECT_THROW(validate_settings(s), Error);
  s = Settings{};
  s.device = "tpu";
  EXPECT_THROW(validate_settings(s), Error);
  EXPECT_EQ(canonical_sampler_name("DDIM"), "ddim");
  EXPECT_EQ(dtype_name(*dtype_from_name("bfloat16")), "bf16");
  s = Settings{};
  s.sampler = "dpmsolver++";  // the spelling `lit generate` accepts is the studio's too
  EXPECT_NO_THROW(validate_settings(s));
}

// ---------------------------------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------------------------------
TEST(StudioSeeds, DiceAndRandomMode) {
  std::set<uint64_t> seen;
  for (int i = 0; i < 20; ++i) {
    const uint64_t s = random_seed();
    EXPECT_LT(s, 1ULL << 32);
    seen.insert(s);
  }
  EXPECT_GT(seen.size(), 15u);
  Settings fixed;
  fixed.seed = 77;
  EXPECT_EQ(seed_for_run(fixed), 77u);
  EXPECT_EQ(fixed.seed, 77u);
  Settings random;
  random.random_seed = true;
  std::set<uint64_t> runs;
  for (int i = 0; i < 5; ++i) {
    const uint64_t s = seed_for_run(random);
    EXPECT_EQ(random.seed, s) << "the seed used is shown";
    runs.insert(s);
  }
  EXPECT_GT(runs.size(), 3u);
}

// ---------------------------------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------------------------------
HistoryEntry entry(uint64_t seed, int64_t h, int64_t w) {
  HistoryEntry e;
  e.pixels = at::randint(0, 256, {h, w, 3}, at::kByte);
  e.settings = some_settings();
  e.settings.seed = seed;
  e.params = image_params(e.settings, fashion_model(), seed, 0);
  return e;
}

TEST(StudioHistory, AddSelectRestoreThumbnails) {
  History h(3);
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.selected(), nullptr);
  const int64_t a = h.add(entry(1, 32, 32));
  const int64_t b = h.add(entry(2, 200, 100));
  EXPECT_EQ(h.selected()->id, b) << "a new image is shown at once";
  EXPECT_EQ(h.thumbnail_count(), 2u);
  EXPECT_EQ(h.find(a)->thumbnail.sizes(), (at::IntArrayRef{32, 32, 3})) << "small images stay as they are";
  EXPECT_EQ(h.find(b)->thumbnail.sizes(), (at::IntArrayRef{96, 48, 3}));

  const HistoryEntry* picked = h.select(a);
  ASSERT_NE(picked, nullptr);
  EXPECT_EQ(picked->settings.seed, 1u);
  EXPECT_EQ(h.selected()->id, a);
  EXPECT_EQ(h.select(999), nullptr);
  EXPECT_EQ(h.selected()->id, a) << "an unknown id changes nothing";

  h.add(entry(3, 8, 8));
  h.add(entry(4, 8, 8));
  EXPECT_EQ(h.size(), 3u) << "the oldest leave past the capacity";
  EXPECT_EQ(h.find(a), nullptr);
  EXPECT_EQ(h.thumbnail_count(), 3u);
}

TEST(StudioHistory, SaveWritesThePngWithItsParameters) {
  History h;
  const int64_t id = h.add(entry(42, 16, 16));
  const std::string dir = temp_path("save");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = suggest_save_path(dir, *h.find(id));
  EXPECT_EQ(fs::path(path).filename(), "lit-studio-42.png");
  save_entry(*h.find(id), path);
  h.set_saved_path(id, path);
  EXPECT_EQ(suggest_save_path(dir, *h.find(id)), dir + "/lit-studio-42-2.png") << "never overwrites";
  EXPECT_TRUE(at::equal(read_image(path), h.find(id)->pixels));
  EXPECT_EQ(read_png_params(path), h.find(id)->params);
  EXPECT_EQ(fs::path(h.find(id)->saved_path), fs::path(path));
  for (const auto& f : fs::directory_iterator(dir))
    EXPECT_EQ(f.path().extension(), ".png") << "no temporary file left: " << f.path();
  EXPECT_THROW(save_entry(*h.find(id), dir + "/no/such/folder/x.png"), Error);
}

TEST(StudioHistory, FitImageEnlargesTinyImagesByWholeFactors) {
  DisplaySize d = fit_image(32, 32, 512, 400);
  EXPECT_EQ(d.scale, 12);
  EXPECT_EQ(d.width, 384);
  d = fit_image(1000, 500, 500, 500);
  EXPECT_FLOAT_EQ(d.scale, 0.5f);
  EXPECT_FLOAT_EQ(d.height, 250);
  EXPECT_EQ(fit_image(0, 0, 10, 10).width, 0);
}

// ---------------------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------------------
TEST(StudioFiles, RecentFilesPersistAtomically) {
  const std::string dir = temp_path("config");
  fs::remove_all(dir);
  const std::string path = dir + "/lit-studio/recent.json";
  RecentFiles r(path, 3);
  r.load();  // no file yet: empty
  EXPECT_TRUE(r.list("model").empty());
  for (const char* f : {"a.pt", "b.pt", "c.pt", "a.pt", "d.pt"}) r.add("model", f);
  r.add("vae", "/vae");
  EXPECT_EQ(r.list("model"), (std::vector<std::string>{"d.pt", "a.pt", "c.pt"}));
  r.save();
  RecentFiles again(path, 3);
  again.load();
  EXPECT_EQ(again.list("model"), r.list("model"));
  EXPECT_EQ(again.list("vae"), std::vector<std::string>{"/vae"});
  size_t files = 0;
  for ([[maybe_unused]] const auto& f : fs::directory_iterator(dir + "/lit-studio")) ++files;
  EXPECT_EQ(files, 1u) << "no temporary file left";

  std::ofstream(path) << "{ not json";
  RecentFiles broken(path);
  EXPECT_THROW(broken.load(), Error);
  EXPECT_TRUE(broken.list("model").empty());
  EXPECT_NE(RecentFiles::default_path().find("lit-studio/recent.json"), std::string::npos);
}

TEST(StudioFiles, ListDirectoryForTheBrowser) {
  const std::string dir = temp_path("browse");
  fs::remove_all(dir);
  fs::create_directories(dir + "/sub");
  fs::create_directories(dir + "/.git");
  for (const char* f : {"b.PNG", "a.png", "model.pt", ".hidden.png"}) std::ofstream(dir + "/" + f) << "x";
  std::vector<std::string> names;
  for (const auto& e : list_directory(dir, {".png"})) names.push_back(e.name + (e.is_directory ? "/" : ""));
  EXPECT_EQ(names, (std::vector<std::string>{"../", "sub/", "a.png", "b.PNG"}));
  EXPECT_EQ(list_directory(dir, {}).size(), 5u);
  EXPECT_EQ(list_directory("/", {}).front().name == "..", false);
  EXPECT_THROW(list_directory(dir + "/missing", {}), Error);
  EXPECT_EQ(one_line("first\nsecond"), "first");
}

}  // namespace
}  // namespace lit::studio
