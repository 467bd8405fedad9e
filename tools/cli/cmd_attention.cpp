// `--attention auto|composed|reference`: which implementation of linear attention a command runs
// (kernels::AttentionImpl), for comparing them on one's own model and machine.
#include "kernels/linear_attention.h"
#include "tools/cli/commands.h"
#include "common/error.h"

namespace lit::cli {

const char* const kAttentionHelp =
    "linear attention's implementation: auto (the fused CUDA kernels for bf16/fp16, the composed form on the "
    "CPU), composed (a few matrix products per head), reference (the ATen reference)";

kernels::AttentionImpl attention_impl_from_name(const std::string& name) {
  if (name == "auto") return kernels::AttentionImpl::Auto;
  if (name == "composed") return kernels::AttentionImpl::Composed;
  if (name == "reference") return kernels::AttentionImpl::Reference;
  throw Error("--attention " + name + ": use auto, composed or reference");
}

void add_attention_option(CLI::App* cmd) {
  cmd->add_option_function<std::string>(
         "--attention", [](const std::string& name) { kernels::set_attention_impl(attention_impl_from_name(name)); },
         kAttentionHelp)
      ->check(CLI::IsMember({"auto", "composed", "reference"}))
      ->default_str("auto");
}

}  // namespace lit::cli
