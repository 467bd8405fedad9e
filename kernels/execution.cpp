#include "kernels/execution.h"

#include "common/error.h"

namespace lit::kernels {

std::optional<AttentionImpl> attention_impl_from_name(const std::string& name) {
  if (name == "auto") return AttentionImpl::Auto;
  if (name == "composed") return AttentionImpl::Composed;
  if (name == "reference") return AttentionImpl::Reference;
  return std::nullopt;
}

AttentionImpl parse_attention_impl(const std::string& name, const std::string& what) {
  if (const auto impl = attention_impl_from_name(name)) return *impl;
  throw Error(what + " " + name + ": use auto, composed or reference");
}

const char* attention_impl_name(AttentionImpl impl) {
  switch (impl) {
    case AttentionImpl::Auto:
      return "auto";
    case AttentionImpl::Composed:
      return "composed";
    case AttentionImpl::Reference:
      return "reference";
  }
  return "?";
}

const std::vector<std::string>& attention_impl_names() {
  static const std::vector<std::string> names = {"auto", "composed", "reference"};
  return names;
}

std::optional<PrecisionPath> precision_path_from_name(const std::string& name) {
  if (name == "fused") return PrecisionPath::Fused;
  if (name == "plain") return PrecisionPath::Plain;
  return std::nullopt;
}

PrecisionPath parse_precision_path(const std::string& name, const std::string& what) {
  if (const auto path = precision_path_from_name(name)) return *path;
  throw Error(what + " " + name + ": use fused or plain");
}

const char* precision_path_name(PrecisionPath path) {
  return path == PrecisionPath::Fused ? "fused" : "plain";
}

const std::vector<std::string>& precision_path_names() {
  static const std::vector<std::string> names = {"fused", "plain"};
  return names;
}

std::string describe(const ExecutionOptions& o) {
  return std::string("attention ") + attention_impl_name(o.attention) + ", " + precision_path_name(o.precision) +
         " kernels, CUDA graphs " + (o.cuda_graphs ? "on" : "off") + (o.exact_float32 ? ", exact float32" : "");
}

}  // namespace lit::kernels
