// The `lit` subcommands. Each registers its options on the CLI11 app and runs when selected; the
// work itself lives in the library, these only parse, call and print.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace lit::kernels {
enum class AttentionImpl;  // kernels/execution.h
}  // namespace lit::kernels

namespace lit::cli {

// Thrown by a subcommand that ends with a specific exit status after it has said why (e.g. 130 after Ctrl-C).
struct ExitStatus {
  int code;
};

void add_inspect_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_distill_command(CLI::App& app);
void add_extract_latents_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_bench_forward_command(CLI::App* bench);  // `lit bench forward`, under the `bench` of add_bench_command
void add_fid_command(CLI::App& app);
void add_train_classifier_command(CLI::App& app);
void add_vae_command(CLI::App& app);
void add_encode_text_command(CLI::App& app);
void add_bench_text_encoder_command(CLI::App& app);  // `lit bench text-encoder`, after add_bench_command
void add_bench_t2i_command(CLI::App& app);           // `lit bench t2i` (cmd_bench_t2i.cpp), after add_bench_command
void add_merge_npz_command(CLI::App& app);           // tools/cli/cmd_merge_npz.cpp: a sharded run's .npz
void add_eval_prompts_command(CLI::App& app);        // tools/cli/cmd_eval_prompts.cpp: prompt adherence
void add_make_captions_command(CLI::App& app);       // tools/cli/cmd_make_captions.cpp: the captioned canvases

// `--attention auto|composed|reference` on a subcommand (generate, train, distill): linear attention's
// implementation, written to *impl once parsed; the command gives it to its model (DiTImpl::set_execution).
// kAttentionHelp says what each name means.
extern const char* const kAttentionHelp;
CLI::Option* add_attention_option(CLI::App* cmd, kernels::AttentionImpl* impl);

}  // namespace lit::cli
