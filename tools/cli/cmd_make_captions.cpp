// lit make-captions -o DIR [-n COUNT] [--seed S] [--size 64] [--data DIR] [--split train|t10k]
// [--two-garment-fraction F] [--overwrite]: the project's captioned data set, canvases of tinted Fashion-MNIST
// garments with captions (tools/train/caption_canvas.h), written as a caption folder with its metadata,
// corpus, held-out combinations and evaluation prompts (tools/train/caption_canvas_folder.h).
#include <chrono>
#include <iostream>
#include <string>

#include "common/error.h"
#include "common/parse_number.h"
#include "tools/cli/commands.h"
#include "tools/cli/progress.h"
#include "tools/train/caption_canvas.h"
#include "tools/train/caption_canvas_folder.h"
#include "tools/train/fashion_mnist.h"

namespace lit::cli {

void add_make_captions_command(CLI::App& app) {
  struct Options {
    std::string output, data = train::default_fashion_mnist_dir(), split = "train";
    std::string count = "20000", seed = "0";
    int64_t size = 64;
    double two_garment_fraction = 0.3;
    bool overwrite = false;
  };
  static Options opt;
  auto* cmd = app.add_subcommand(
      "make-captions", "Write the captioned canvases of Fashion-MNIST garments (the built-in text-to-image data)");
  cmd->add_option("-o,--output", opt.output, "the data set folder (written as DIR.partial, then renamed)")->required();
  cmd->add_option("-n,--count", opt.count, "canvases to write (1 .. 10000000)")->capture_default_str();
  cmd->add_option("--seed", opt.seed, "the canvases' seed (0 .. 2^64 - 1): the same seed, the same bytes")
      ->capture_default_str();
  cmd->add_option("--size", opt.size, "canvas side in pixels (even, 32 .. 512)")->capture_default_str();
  cmd->add_option("--data", opt.data, "the Fashion-MNIST folder (the IDX .gz files)")->capture_default_str();
  cmd->add_option("--split", opt.split, "the Fashion-MNIST split the garments come from")
      ->check(CLI::IsMember({"train", "t10k"}))
      ->capture_default_str();
  cmd->add_option("--two-garment-fraction", opt.two_garment_fraction, "share of canvases with two garments (0 .. 1)")
      ->capture_default_str();
  cmd->add_flag("--overwrite", opt.overwrite, "replace a data set this command wrote before");
  cmd->callback([] {
    const int64_t count = static_cast<int64_t>(parse_uint64(opt.count, "-n"));
    if (count < 1 || count > 10000000) throw Error("-n " + opt.count + ": not in 1 .. 10000000");
    if (opt.size < 32 || opt.size > 512 || opt.size % 2 != 0)
      throw Error("--size " + std::to_string(opt.size) + ": not an even number in 32 .. 512");
    train::CanvasOptions canvas;
    canvas.canvas = opt.size;
    canvas.seed = parse_seed(opt.seed);
    check_finite_range(opt.two_garment_fraction, "--two-garment-fraction", 0.0, 1.0);
    canvas.two_garment_fraction = opt.two_garment_fraction;
    train::check_canvas_options(canvas);
    train::check_caption_canvas_output(opt.output, opt.overwrite);  // before loading anything
    const auto start = std::chrono::steady_clock::now();
    const train::CaptionCanvasGenerator generator(train::load_fashion_mnist(opt.data, opt.split), canvas);
    std::cout << "source  " << generator.data().description() << "\n"
              << "canvas  " << opt.size << "x" << opt.size << ", seed " << canvas.seed << ", "
              << opt.two_garment_fraction << " with two garments, " << train::held_out_combos().size()
              << " held-out colour x garment combinations" << std::endl;
    ProgressBar bar(count, "images");
    const train::CaptionCanvasFolderSummary summary = train::write_caption_canvas_folder(
        generator, opt.output, count, opt.overwrite, "Fashion-MNIST " + opt.split + " (" + opt.data + ")",
        [&bar](int64_t done) { bar.update(done); });
    bar.finish();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "wrote   " << opt.output << ": " << summary.images << " canvases (" << summary.two_garments
              << " with two garments) with captions, metadata.jsonl, corpus.txt, holdout.txt, " << summary.eval_prompts
              << " evaluation prompts in eval-prompts.jsonl, in " << ProgressBar::format_duration(seconds) << std::endl;
  });
}

}  // namespace lit::cli
