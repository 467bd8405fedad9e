// `--attention auto|composed|reference`: which implementation of linear attention a command's model runs
// (kernels::AttentionImpl, carried by the model: DiTImpl::set_execution), for comparing them on one's own
// model and machine.
#include "kernels/execution.h"
#include "tools/cli/commands.h"

namespace lit::cli {

const char* const kAttentionHelp =
    "linear attention's implementation: auto (the fused CUDA kernels for bf16/fp16, the composed form on the "
    "CPU), composed (a few matrix products per head), reference (the ATen reference)";

CLI::Option* add_attention_option(CLI::App* cmd, kernels::AttentionImpl* impl) {
  return cmd
      ->add_option_function<std::string>(
          "--attention", [impl](const std::string& name) { *impl = kernels::parse_attention_impl(name); },
          kAttentionHelp)
      ->check(CLI::IsMember(kernels::attention_impl_names()))
      ->default_str("auto");
}

}  // namespace lit::cli
