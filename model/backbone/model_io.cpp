#include "model/backbone/model_io.h"

#include <ATen/core/grad_mode.h>

#include <cctype>
#include <sstream>

#include "common/error.h"
#include "common/format.h"
#include "weights/finite_check.h"
#include "weights/safetensors.h"

namespace lit {
namespace {

// "1234567" -> "1,234,567"
std::string grouped(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// "a, b, c and 12 more"
std::string name_list(const std::vector<std::string>& names, size_t shown = 3) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < shown; ++i) out += (i ? ", " : "") + ("'" + names[i] + "'");
  if (names.size() > shown) out += " and " + std::to_string(names.size() - shown) + " more";
  return out;
}

// blocks.<i>.attn.*
bool is_attention_tensor(const std::string& name) {
  const std::string prefix = "blocks.";
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  size_t i = prefix.size();
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) ++i;
  return i > prefix.size() && name.compare(i, 6, ".attn.") == 0;
}

std::string model_label(const DiT& model) {
  const ModelConfig& c = model->config();
  return c.preset_name() == "custom" ? std::string("the model") : "the " + c.preset_name();
}

void check_loadable(const DiT& model) {
  if (model->device().is_meta()) throw Error("model load: the model lives on the meta device (shapes only)");
}

// A checkpoint tensor must have the model tensor's shape and a floating-point dtype.
void check_tensor(const std::string& name, const at::Tensor& dst, const at::Tensor& src, const DiT& model) {
  if (src.sizes() != dst.sizes())
    throw Error("model load: tensor '" + name + "' has shape " + shape_string(src.sizes()) + " in the checkpoint, " +
                model_label(model) + " expects " + shape_string(dst.sizes()));
  if (!at::isFloatingType(src.scalar_type()))
    throw Error("model load: tensor '" + name + "' has dtype " + c10::toString(src.scalar_type()) +
                " in the checkpoint, a floating-point dtype is expected");
}

// Copies src into the model tensor dst, converting dtype and device.
void copy_tensor(at::Tensor& dst, const at::Tensor& src) {
  at::NoGradGuard no_grad;
  dst.copy_(src);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------------------
std::string LoadReport::to_string() const {
  std::ostringstream s;
  s << "loaded " << loaded.size() << " tensors (" << grouped(loaded_params) << " parameters)";
  if (!initialised.empty())
    s << "; initialised " << initialised.size() << " tensors (" << grouped(initialised_params)
      << " parameters) afresh: " << name_list(initialised);
  if (!skipped.empty())
    s << "; skipped " << skipped.size() << " checkpoint tensors (" << grouped(skipped_params)
      << " parameters): " << name_list(skipped);
  if (!missing.empty())
    s << "; " << missing.size() << " model tensors not in the checkpoint (left as they were): " << name_list(missing);
  if (!unexpected.empty())
    s << "; " << unexpected.size() << " checkpoint tensors unused (unexpected): " << name_list(unexpected);
  s << ".";
  return s.str();
}

// ---------------------------------------------------------------------------------------------------------
// State dicts
// ---------------------------------------------------------------------------------------------------------
StateDict state_dict(const DiT& model) {
  StateDict sd;
  for (const auto& item : model->named_parameters(/*recurse=*/true)) sd.insert(item.key(), item.value().detach());
  return sd;
}

LoadReport load_state_dict(DiT& model, const StateDict& weights, bool strict) {
  check_loadable(model);
  LoadReport report;
  auto params = model->named_parameters(/*recurse=*/true);
  // Check everything before changing anything, so a failed load leaves the model as it was.
  for (auto& item : params) {
    const std::string& name = item.key();
    if (!weights.contains(name)) {
      report.missing.push_back(name);
      continue;
    }
    check_tensor(name, item.value(), weights.at(name), model);
    report.loaded.push_back(name);
    report.loaded_params += item.value().numel();
  }
  for (const auto& [name, tensor] : weights)
    if (!params.contains(name)) report.unexpected.push_back(name);

  if (strict && !report.missing.empty()) {
    const std::string& first = report.missing.front();
    throw Error("model load: the checkpoint lacks " + std::to_string(report.missing.size()) + " of " +
                model_label(model) + "'s tensors: " + name_list(report.missing) + " ('" + first + "' is " +
                shape_string(params[first].sizes()) + ")" +
                (is_attention_tensor(first) ? "; to start a LiT from a DiT checkpoint use weight inheritance" : ""));
  }
  if (strict && !report.unexpected.empty()) {
    const std::string& first = report.unexpected.front();
    throw Error("model load: the checkpoint has " + std::to_string(report.unexpected.size()) + " tensors that " +
                model_label(model) + " lacks: " + name_list(report.unexpected) + " ('" + first + "' is " +
                shape_string(weights.at(first).sizes()) + ")");
  }
  for (const std::string& name : report.loaded) copy_tensor(params[name], weights.at(name));
  return report;
}

// ---------------------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------------------
ModelConfig resolve_model_config(const std::string& path, const LoadedCheckpoint& checkpoint,
                                 const std::optional<ModelConfig>& given, std::string* source) {
  auto set_source = [&](const std::string& s) {
    if (source) *source = s;
  };
  std::string found_in;
  const std::string text = checkpoint_config_json(path, checkpoint.metadata, &found_in);
  if (found_in == "metadata") {
    ModelConfig stored;
    try {
      stored = ModelConfig::from_json(text);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (the \"config\" metadata of '" + path + "')");
    }
    if (given && *given != stored)
      throw Error("model load: the config given (" + given->summary() + ") differs from the one stored in '" + path +
                  "' (" + stored.summary() + ")");
    set_source("checkpoint metadata");
    return stored;
  }
  if (given) {
    given->validate();
    set_source("given");
    return *given;
  }
  if (!text.empty()) {
    try {
      ModelConfig beside = ModelConfig::from_json(text);
      set_source(found_in);
      return beside;
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (in '" + found_in + "', found beside '" + path + "')");
    }
  }
  ModelConfig inferred = infer_config(checkpoint.tensors);
  set_source("inferred from tensor shapes");
  return inferred;
}

LoadedModel load_model(const std::string& path, const ModelLoadOptions& options) {
  LoadedCheckpoint checkpoint = load_checkpoint(path, options.use_weights);
  LoadedModel out;
  out.format = checkpoint.format;
  out.weights_key = checkpoint.weights_key;
  out.metadata = checkpoint.metadata;
  out.config = resolve_model_config(path, checkpoint, options.config, &out.config_source);
  if (!non_finite_weights_allowed()) check_finite_weights(checkpoint.tensors, path);
  out.model = DiT(out.config, at::TensorOptions().dtype(options.dtype).device(options.device), /*initialize=*/false);
  try {
    out.report = load_state_dict(out.model, checkpoint.tensors, /*strict=*/true);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (loading '" + path + "', config " + out.config_source + ")");
  }
  out.model->eval();
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Weight inheritance
// ---------------------------------------------------------------------------------------------------------
LoadReport inherit_from_dit(DiT& lit_model, const StateDict& dit_weights) {
  check_loadable(lit_model);
  LoadReport report;
  auto params = lit_model->named_parameters(/*recurse=*/true);
  // Check everything before changing anything, so a failed inheritance leaves the model as it was.
  for (auto& item : params) {
    const std::string& name = item.key();
    if (is_attention_tensor(name)) {
      report.initialised.push_back(name);
      report.initialised_params += item.value().numel();
      continue;
    }
    if (!dit_weights.contains(name))
      throw Error("weight inheritance: the DiT checkpoint lacks '" + name + "' (" + shape_string(item.value().sizes()) +
                  " in " + model_label(lit_model) + ")");
    check_tensor(name, item.value(), dit_weights.at(name), lit_model);
    report.loaded.push_back(name);
    report.loaded_params += item.value().numel();
  }
  for (const auto& [name, tensor] : dit_weights) {
    if (is_attention_tensor(name)) {
      report.skipped.push_back(name);
      report.skipped_params += tensor.numel();
    } else if (!params.contains(name)) {
      report.unexpected.push_back(name);
    }
  }
  if (!report.unexpected.empty())
    throw Error("weight inheritance: the DiT checkpoint has " + std::to_string(report.unexpected.size()) +
                " tensors that " + model_label(lit_model) + " lacks: " + name_list(report.unexpected) +
                " (a LiT inherits from a DiT of the same depth and width)");

  for (const std::string& name : report.loaded) copy_tensor(params[name], dit_weights.at(name));
  // Fresh attention in every block: Xavier-uniform linears, zero biases, default depthwise conv.
  for (auto& block : lit_model->blocks) block->attn->reset_parameters();
  return report;
}

LoadedModel load_lit_from_dit(const std::string& dit_path, const ModelConfig& lit_config,
                              const ModelLoadOptions& options) {
  if (!lit_config.is_linear())
    throw Error("weight inheritance: the target config has softmax attention; a LiT needs \"attention\": \"linear\"");
  LoadedCheckpoint checkpoint = load_checkpoint(dit_path, options.use_weights);
  if (!non_finite_weights_allowed()) check_finite_weights(checkpoint.tensors, dit_path);
  LoadedModel out;
  out.format = checkpoint.format;
  out.weights_key = checkpoint.weights_key;
  out.config = lit_config;
  out.config_source = "given";
  out.model = DiT(lit_config, at::TensorOptions().dtype(options.dtype).device(options.device), /*initialize=*/false);
  try {
    out.report = inherit_from_dit(out.model, checkpoint.tensors);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (inheriting from '" + dit_path + "')");
  }
  out.model->eval();
  return out;
}

ModelConfig lit_config_from_dit(const ModelConfig& dit_config, int64_t heads) {
  ModelConfig c = dit_config;
  c.attention = AttentionType::Linear;
  c.num_heads = heads > 0 ? heads : (dit_config.hidden_size <= 768 ? 2 : 4);
  c.dwc_kernel = 5;
  c.validate();
  return c;
}

// ---------------------------------------------------------------------------------------------------------
// Saving
// ---------------------------------------------------------------------------------------------------------
void save_model(const std::string& path, const DiT& model, std::optional<at::ScalarType> dtype,
                const std::map<std::string, std::string>& metadata) {
  check_loadable(model);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, tensor] : state_dict(model)) tensors.emplace_back(name, dtype ? tensor.to(*dtype) : tensor);
  std::map<std::string, std::string> meta = metadata;
  meta["config"] = model->config().to_json();
  write_safetensors(path, tensors, meta);
}

}  // namespace lit
