// lit: the command line front end of lit.cpp.
#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "kernels/runtime/cpu_allocator.h"
#include "kernels/runtime/cuda_support.h"
#include "kernels/runtime/torch_compat.h"
#include "tools/cli/commands.h"
#include "common/error.h"

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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const lit::cli::ExitStatus& e) {
    return e.code;
  } catch (const lit::Error& e) {
    std::cerr << "lit: error: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "lit: error: " << first_line(e.what_without_backtrace()) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "lit: error: " << first_line(e.what()) << "\n";
    return 1;
  }
  return 0;
}
