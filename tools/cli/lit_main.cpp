// lit: the command line front end of lit.cpp.
#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "common/error.h"
#include "common/input_limits.h"
#include "common/printable.h"
#include "kernels/runtime/cpu_allocator.h"
#include "kernels/runtime/cuda_support.h"
#include "kernels/runtime/torch_compat.h"
#include "tools/cli/commands.h"
#include "weights/finite_check.h"

namespace {

// c10 errors carry a C++ backtrace after the first line; the user needs only the first line.
std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lit: LiT / DiT diffusion transformers in C++ (generate, train, distill, evaluate)"};
  app.require_subcommand(1);
  lit::kernels::use_exact_float32();
  lit::kernels::tune_cpu_allocator();
  // Usage errors are one line too, like every other error.
  app.failure_message(
      [](const CLI::App*, const CLI::Error& e) { return std::string("lit: error: ") + e.what() + " (see --help)\n"; });
  app.set_version_flag("--version", std::string("lit ") + LIT_VERSION + " (LibTorch " + lit::compat::torch_version() +
                                        "; " + lit::kernels::cuda_summary() + ")");
  // Limits on hostile input (docs: hardening): given before the command, e.g. `lit --max-image-pixels 4e8` is
  // refused, `lit --max-image-pixels 400000000 vae encode big.png`.
  app.add_option_function<std::string>(
      "--max-image-pixels",
      [](const std::string& text) {
        lit::InputLimits limits = lit::input_limits();
        limits.max_image_pixels = lit::parse_pixel_limit(text, "--max-image-pixels");
        lit::set_input_limits(limits);
      },
      "largest image (width x height) any command decodes; default 67108864 (8192 x 8192), or "
      "LIT_MAX_IMAGE_PIXELS");
  app.add_flag_callback(
      "--allow-non-finite-weights", [] { lit::allow_non_finite_weights(true); },
      "load checkpoints whose weights hold NaN or infinite values (refused by default)");
  lit::cli::add_inspect_command(app);
  lit::cli::add_convert_command(app);
  lit::cli::add_train_command(app);
  lit::cli::add_distill_command(app);
  lit::cli::add_extract_latents_command(app);
  lit::cli::add_generate_command(app);
  lit::cli::add_bench_command(app);
  lit::cli::add_fid_command(app);
  lit::cli::add_train_classifier_command(app);
  lit::cli::add_vae_command(app);
  lit::cli::add_encode_text_command(app);
  lit::cli::add_bench_text_encoder_command(app);
  lit::cli::add_bench_t2i_command(app);
  lit::cli::add_merge_npz_command(app);
  lit::cli::add_eval_prompts_command(app);
  lit::cli::add_make_captions_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const lit::cli::ExitStatus& e) {
    return e.code;
  } catch (const lit::Error& e) {
    // Messages quote file contents (tensor names, metadata): printed escaped, never obeyed by the terminal.
    std::cerr << "lit: error: " << lit::printable(e.what()) << "\n";
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "lit: error: " << lit::printable(first_line(e.what_without_backtrace())) << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "lit: error: out of memory (the input asks for more memory than this machine grants)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "lit: error: " << lit::printable(first_line(e.what())) << "\n";
    return 1;
  }
  return 0;
}
