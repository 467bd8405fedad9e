// How a model's forward runs, as explicit options instead of process-wide switches. A loaded model carries
// one ExecutionOptions (DiTImpl::set_execution, SelfAttention::set_execution); the generation pipeline sets
// it from the request, `lit bench forward` per row, lit-studio from its panel. What kind of call a forward is
// (Pass) is decided where the call is made: DiT's forward takes the training path when gradients are
// recorded, activation checkpointing's first (non-recording) forward asks for it by name.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace lit::kernels {

// Which implementation of linear attention runs (kernels/linear_attention.h):
//   Auto       the fused kernels (forward, or forward and backward) for CUDA bf16/fp16; the composed form on
//              the CPU (inference and training); the reference otherwise
//   Composed   linear_attention_composed() everywhere, training included
//   Reference  linear_attention_reference() everywhere
enum class AttentionImpl { Auto, Composed, Reference };

// The precision path of half-precision inference on CUDA:
//   Fused  bf16/fp16 CUDA inference takes the one-GEMM q/k/v projection, the fused GELU and gated-residual
//          epilogues and the fused adaLN kernel (float32 and training always take the plain operators)
//   Plain  the plain ATen operators everywhere, as in training (to compare with, or to rule the kernels out)
enum class PrecisionPath { Fused, Plain };

// What a forward is for: Inference may take kernels that record nothing for autograd; Training takes the
// operators whose backward exists, also in a forward that records nothing (activation checkpointing's
// first forward must compute what its recomputation with gradients will, bit for bit).
enum class Pass { Inference, Training };

struct ExecutionOptions {
  AttentionImpl attention = AttentionImpl::Auto;
  PrecisionPath precision = PrecisionPath::Fused;
  bool cuda_graphs = false;   // sampling replays the forward from CUDA graphs (CUDA devices only)
  bool exact_float32 = true;  // float32 on CUDA without TF32, deterministic cuDNN (see use_exact_float32)

  bool operator==(const ExecutionOptions& o) const {
    return attention == o.attention && precision == o.precision && cuda_graphs == o.cuda_graphs &&
           exact_float32 == o.exact_float32;
  }
  bool operator!=(const ExecutionOptions& o) const { return !(*this == o); }
};

// "auto", "composed", "reference"; nothing for another name.
std::optional<AttentionImpl> attention_impl_from_name(const std::string& name);
// attention_impl_from_name, or lit::Error "<what> <name>: use auto, composed or reference".
AttentionImpl parse_attention_impl(const std::string& name, const std::string& what = "--attention");
const char* attention_impl_name(AttentionImpl impl);
const std::vector<std::string>& attention_impl_names();

// "fused", "plain"; nothing for another name.
std::optional<PrecisionPath> precision_path_from_name(const std::string& name);
PrecisionPath parse_precision_path(const std::string& name, const std::string& what = "--precision-path");
const char* precision_path_name(PrecisionPath path);
const std::vector<std::string>& precision_path_names();

// One line for logs and the studio: "attention auto, fused kernels, CUDA graphs off, exact float32".
std::string describe(const ExecutionOptions& options);

}  // namespace lit::kernels
