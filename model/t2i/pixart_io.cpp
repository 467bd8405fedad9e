#include "model/t2i/pixart_io.h"

#include <ATen/core/grad_mode.h>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/format.h"
#include "model/t2i/pixart_diffusers.h"
#include "weights/checkpoint.h"
#include "weights/safetensors.h"
#include "weights/torch/torch_file.h"

namespace lit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kNullCaption = "y_embedder.y_embedding";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string name_list(const std::vector<std::string>& names, size_t shown = 3) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < shown; ++i) out += (i ? ", " : "") + ("'" + names[i] + "'");
  if (names.size() > shown) out += " and " + std::to_string(names.size() - shown) + " more";
  return out;
}

// blocks.<i>.attn.*
bool is_self_attention_tensor(const std::string& name) {
  const std::string prefix = "blocks.";
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  size_t i = prefix.size();
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) ++i;
  return i > prefix.size() && name.compare(i, 6, ".attn.") == 0;
}

std::string model_label(const PixArtMS& model) {
  const std::string preset = model->config().preset_name();
  return preset == "custom" ? std::string("the model") : "the " + preset;
}

// ---------------------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------------------
// The container key of a torch.save file: "" for a bare state dict; for {'state_dict', 'state_dict_ema', ...}
// 'state_dict_ema' when use_weights is "ema" and it exists, 'state_dict' otherwise (or use_weights itself).
std::string choose_pth_key(const std::string& path, CheckpointFormat format, const std::string& use_weights) {
  const auto file = TorchFile::open(path, format);
  const PickleValue& root = file->root();
  if (!root.is(PickleValue::Kind::Dict)) return "";
  bool bare = true;
  for (size_t i = 0; i < root.dict_size(); ++i)
    if (!root.dict_value(i)->is(PickleValue::Kind::Tensor)) bare = false;
  if (bare) return "";
  if (use_weights == "ema" && root.dict_find("state_dict_ema")) return "state_dict_ema";
  if ((use_weights == "ema" || use_weights == "model") && root.dict_find("state_dict")) return "state_dict";
  return use_weights;  // load_checkpoint names the keys present if it is absent
}

// The tensors of one checkpoint file; with shapes_only, meta-device tensors of the stored shapes and dtypes
// (read_checkpoint_info: no tensor data is read).
LoadedCheckpoint read_tensors(const std::string& path, const std::string& use_weights, bool shapes_only) {
  if (!shapes_only) return load_checkpoint(path, use_weights);
  const CheckpointInfo info = read_checkpoint_info(path, use_weights);
  LoadedCheckpoint out;
  out.format = info.format;
  out.metadata = info.metadata;
  out.weights_key = info.weights_key;
  out.top_level_keys = info.top_level_keys;
  for (const TensorInfo& t : info.tensors)
    out.tensors.insert(t.name, at::empty(t.shape, at::TensorOptions().dtype(t.dtype).device(at::kMeta)));
  return out;
}

// The folder of a diffusers PixArt transformer (holding config.json), or "" when `path` is not one.
std::string diffusers_folder(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return "";
  if (fs::is_regular_file(fs::path(path) / "transformer" / "config.json", ec))
    return (fs::path(path) / "transformer").string();
  if (fs::is_regular_file(fs::path(path) / "config.json", ec)) return path;
  return "";
}

void read_diffusers_folder(const std::string& path, PixArtCheckpoint& out, bool shapes_only) {
  const std::string dir = diffusers_folder(path);
  if (dir.empty())
    throw Error(path +
                ": a folder, but neither transformer/config.json nor config.json is in it (not a diffusers model)");
  const std::string config_path = (fs::path(dir) / "config.json").string();
  out.config = pixart_config_from_diffusers_json(read_text(config_path), config_path);
  out.config_source = config_path;

  const fs::path index = fs::path(dir) / "diffusion_pytorch_model.safetensors.index.json";
  const fs::path single = fs::path(dir) / "diffusion_pytorch_model.safetensors";
  const fs::path bin = fs::path(dir) / "diffusion_pytorch_model.bin";
  StateDict tensors;
  std::error_code ec;
  if (fs::is_regular_file(index, ec)) {
    json j;
    try {
      j = json::parse(read_text(index.string()));
    } catch (const json::exception& e) {
      throw Error(index.string() + ": not valid JSON (" + e.what() + ")");
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(index.string() + ": no \"weight_map\" object");
    std::vector<std::string> shards;
    std::map<std::string, std::string> where;
    for (const auto& item : j["weight_map"].items()) {
      const std::string shard = item.value().get<std::string>();
      if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
      where[item.key()] = shard;
    }
    for (const std::string& shard : shards)
      if (!fs::is_regular_file(fs::path(dir) / shard, ec))
        throw Error(index.string() + ": shard '" + shard + "' is missing from " + dir);
    for (const std::string& shard : shards) {
      const std::string shard_path = (fs::path(dir) / shard).string();
      LoadedCheckpoint part = read_tensors(shard_path, "ema", shapes_only);
      if (out.metadata.empty()) out.metadata = part.metadata;
      for (const auto& [name, tensor] : part.tensors) {
        auto it = where.find(name);
        if (it == where.end() || it->second != shard)
          throw Error(shard_path + ": holds '" + name + "', which the index does not assign to it");
        tensors.insert(name, tensor);
      }
    }
    for (const auto& [name, shard] : where)
      if (!tensors.contains(name)) throw Error(index.string() + ": '" + name + "' is not in its shard '" + shard + "'");
    out.format = "diffusers folder (" + std::to_string(shards.size()) + " shards)";
  } else if (fs::is_regular_file(single, ec) || fs::is_regular_file(bin, ec)) {
    const std::string file = fs::is_regular_file(single, ec) ? single.string() : bin.string();
    LoadedCheckpoint part = read_tensors(file, "ema", shapes_only);
    out.metadata = part.metadata;
    tensors = std::move(part.tensors);
    out.format = "diffusers folder";
  } else {
    throw Error(dir + ": no diffusion_pytorch_model.safetensors, .safetensors.index.json (sharded) or .bin");
  }
  out.layout = "diffusers";
  out.tensors = pixart_from_diffusers(tensors);
}

// A config JSON found beside an official checkpoint (or in its metadata), by its form.
PixArtConfig parse_config_text(const std::string& text, const std::string& what) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("_class_name")) return pixart_config_from_diffusers_json(text, what);
  if (j.is_object() && j.contains("model")) {
    try {
      return PixArtConfig::from_json(text);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (" + what + ")");
    }
  }
  return pixart_config_from_official_kwargs(text, what);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------------------
PixArtConfig pixart_config_from_official_kwargs(const std::string& text, const std::string& what) {
  auto error = [&](const std::string& m) { return Error("PixArt constructor arguments in '" + what + "': " + m); };
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) throw error("not a JSON object");
  if (j.contains("constructor_kwargs")) j = j["constructor_kwargs"];
  if (!j.is_object()) throw error("constructor_kwargs is not an object");
  json c = json::object();
  for (const auto& item : j.items()) {
    const std::string& k = item.key();
    const json& v = item.value();
    if (k == "drop_path" || k == "config") continue;  // training-only / bookkeeping
    if (k == "qk_norm") {
      if (v != false) throw error("qk_norm is not supported");
      continue;
    }
    if (k == "kv_compress_config") {
      if (!v.is_null()) throw error("kv_compress_config (PixArt-Σ token compression) is not supported");
      continue;
    }
    if (k == "lewei_scale") {
      c["pe_interpolation"] = v;
      continue;
    }
    c[k] = v;
  }
  c["model"] = "PixArtMS";
  try {
    return PixArtConfig::from_json(c.dump());
  } catch (const Error& e) {
    throw error(e.what());
  }
}

bool is_pixart_checkpoint(const std::string& path) {
  try {
    if (!diffusers_folder(path).empty()) {
      const std::string dir = diffusers_folder(path);
      pixart_config_from_diffusers_json(read_text((fs::path(dir) / "config.json").string()), dir);
      return true;
    }
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return false;
    const CheckpointFormat format = detect_checkpoint_format(path);
    const std::string key =
        format == CheckpointFormat::Safetensors ? std::string("ema") : choose_pth_key(path, format, "ema");
    const CheckpointInfo info = read_checkpoint_info(path, key.empty() ? "ema" : key);
    auto it = info.metadata.find("config");
    if (it != info.metadata.end() && PixArtConfig::is_pixart_json(it->second)) return true;
    for (const TensorInfo& t : info.tensors)
      if (t.name == "y_embedder.y_proj.fc1.weight" || t.name == "caption_projection.linear_1.weight") return true;
  } catch (const Error&) {
  }
  return false;
}

PixArtCheckpoint read_pixart_checkpoint(const std::string& path, const std::string& use_weights, bool shapes_only) {
  PixArtCheckpoint out;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    read_diffusers_folder(path, out, shapes_only);
    return out;
  }
  const CheckpointFormat format = detect_checkpoint_format(path);
  std::string key;
  if (format != CheckpointFormat::Safetensors) key = choose_pth_key(path, format, use_weights);
  LoadedCheckpoint ckpt = read_tensors(path, key.empty() ? use_weights : key, shapes_only);
  out.format = checkpoint_format_name(format);
  out.weights_key = ckpt.weights_key;
  out.metadata = ckpt.metadata;
  if (is_diffusers_pixart_state_dict(ckpt.tensors)) {
    out.layout = "diffusers";
    out.tensors = pixart_from_diffusers(ckpt.tensors);
  } else {
    out.layout = "official";
    for (const auto& [name, tensor] : ckpt.tensors) {
      if (name == "pos_embed") {
        out.dropped.push_back(name);
        continue;
      }
      out.tensors.insert(name, tensor);
    }
  }
  std::string found_in;
  const std::string text = checkpoint_config_json(path, ckpt.metadata, &found_in);
  if (found_in == "metadata") {
    out.config = parse_config_text(text, path + " (\"config\" metadata)");
    out.config_source = "checkpoint metadata";
  } else if (!text.empty()) {
    try {
      out.config = parse_config_text(text, found_in);
      out.config_source = found_in;
    } catch (const Error& e) {
      out.config_error = e.what();
    }
  }
  if (!out.config && ckpt.tensors.contains("pos_embed")) {
    // Remember the training grid for infer_pixart_config (pos_embed itself is not used).
    out.config_source = "";
    out.metadata["_pos_embed_tokens"] = std::to_string(ckpt.tensors.at("pos_embed").size(1));
  }
  return out;
}

PixArtConfig infer_pixart_config(const StateDict& w, int64_t pos_embed_tokens) {
  auto error = [](const std::string& m) { return Error("cannot infer the PixArt config: " + m); };
  auto shape = [&](const std::string& name) {
    if (!w.contains(name)) throw error("no tensor '" + name + "' (not a PixArt state dict?)");
    return w.at(name).sizes();
  };
  PixArtConfig c;
  const auto patch = shape("x_embedder.proj.weight");
  if (patch.size() != 4 || patch[2] != patch[3]) throw error("x_embedder.proj.weight is " + shape_string(patch));
  c.hidden_size = patch[0];
  c.in_channels = patch[1];
  c.patch_size = patch[2];
  c.depth = 0;
  while (w.contains("blocks." + std::to_string(c.depth) + ".scale_shift_table")) ++c.depth;
  if (c.depth == 0) throw error("no blocks.0.scale_shift_table");
  c.caption_channels = shape("y_embedder.y_proj.fc1.weight")[1];
  if (w.contains(kNullCaption)) c.model_max_length = w.at(kNullCaption).size(0);
  c.mlp_ratio = static_cast<double>(shape("blocks.0.mlp.fc1.weight")[0]) / static_cast<double>(c.hidden_size);
  const int64_t out_channels = shape("final_layer.linear.weight")[0] / (c.patch_size * c.patch_size);
  c.pred_sigma = out_channels == 2 * c.in_channels;
  c.micro_condition = w.contains("csize_embedder.mlp.0.weight");
  if (c.micro_condition) c.model_max_length = w.contains(kNullCaption) ? c.model_max_length : 120;
  if (pos_embed_tokens > 0) {
    const auto grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(pos_embed_tokens))));
    if (grid * grid != pos_embed_tokens) throw error("pos_embed is not a square grid");
    c.input_size = grid * c.patch_size;
  }
  c.pe_interpolation = static_cast<double>(c.input_size * 8) / 512.0;
  if (c.hidden_size != 1152)
    throw error("width " + std::to_string(c.hidden_size) +
                " is no released PixArt configuration and the head count is not in the weights: give the config");
  c.num_heads = 16;
  if (w.contains("blocks.0.attn.q.weight")) {
    c.attention = AttentionType::Linear;
    const auto dwc = shape("blocks.0.attn.dwc.weight");
    if (dwc.size() != 4 || dwc[0] <= 0 || c.hidden_size % dwc[0] != 0)
      throw error("blocks.0.attn.dwc.weight is " + shape_string(dwc));
    c.linear_heads = c.hidden_size / dwc[0];
    c.dwc_kernel = dwc[2];
  }
  try {
    c.validate();
  } catch (const Error& e) {
    throw error(e.what());
  }
  return c;
}

// ---------------------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------------------
LoadReport load_state_dict(PixArtMS& model, const StateDict& weights, bool strict) {
  if (model->device().is_meta()) throw Error("PixArt load: the model lives on the meta device (shapes only)");
  LoadReport report;
  const StateDict own = state_dict(model);
  for (const auto& [name, dst] : own) {
    if (!weights.contains(name)) {
      report.missing.push_back(name);
      continue;
    }
    const at::Tensor& src = weights.at(name);
    if (src.sizes() != dst.sizes())
      throw Error("PixArt load: tensor '" + name + "' has shape " + shape_string(src.sizes()) + " in the checkpoint, " +
                  model_label(model) + " expects " + shape_string(dst.sizes()));
    if (!at::isFloatingType(src.scalar_type()))
      throw Error("PixArt load: tensor '" + name + "' has dtype " + c10::toString(src.scalar_type()) +
                  ", a floating-point dtype is expected");
    report.loaded.push_back(name);
    report.loaded_params += dst.numel();
  }
  for (const auto& [name, tensor] : weights) {
    if (name == "pos_embed") {  // recomputed for every grid
      report.skipped.push_back(name);
      report.skipped_params += tensor.numel();
    } else if (!own.contains(name)) {
      report.unexpected.push_back(name);
    }
  }
  std::vector<std::string> missing;
  for (const std::string& name : report.missing)
    if (name != kNullCaption) missing.push_back(name);
  if (strict && !missing.empty())
    throw Error("PixArt load: the checkpoint lacks " + std::to_string(missing.size()) + " of " + model_label(model) +
                "'s tensors: " + name_list(missing) + " ('" + missing.front() + "' is " +
                shape_string(own.at(missing.front()).sizes()) + ")" +
                (is_self_attention_tensor(missing.front())
                     ? "; to start a LiT-T2I from a PixArt checkpoint use weight inheritance"
                     : ""));
  if (strict && !report.unexpected.empty())
    throw Error("PixArt load: the checkpoint has " + std::to_string(report.unexpected.size()) + " tensors that " +
                model_label(model) + " lacks: " + name_list(report.unexpected) + " ('" + report.unexpected.front() +
                "' is " + shape_string(weights.at(report.unexpected.front()).sizes()) + ")");
  at::NoGradGuard no_grad;
  for (const std::string& name : report.loaded) {
    at::Tensor dst = own.at(name);
    dst.copy_(weights.at(name));
  }
  for (const std::string& name : report.missing)
    if (strict && name == kNullCaption) {  // non-strict loads leave missing tensors as they were
      at::Tensor dst = own.at(name);
      dst.zero_();
    }
  return report;
}

namespace {

PixArtConfig resolve_config(const std::string& path, const PixArtCheckpoint& ckpt,
                            const std::optional<PixArtConfig>& given, std::string* source) {
  if (ckpt.config && ckpt.config_source == "checkpoint metadata") {
    if (given && *given != *ckpt.config)
      throw Error("PixArt load: the config given (" + given->summary() + ") differs from the one stored in '" + path +
                  "' (" + ckpt.config->summary() + ")");
    *source = ckpt.config_source;
    return *ckpt.config;
  }
  if (given) {
    given->validate();
    *source = "given";
    return *given;
  }
  if (ckpt.config) {
    *source = ckpt.config_source;
    return *ckpt.config;
  }
  if (!ckpt.config_error.empty()) throw Error(ckpt.config_error + " (found beside '" + path + "'; or give the config)");
  int64_t tokens = 0;
  if (auto it = ckpt.metadata.find("_pos_embed_tokens"); it != ckpt.metadata.end()) tokens = std::stoll(it->second);
  *source = "inferred from tensor shapes";
  return infer_pixart_config(ckpt.tensors, tokens);
}

}  // namespace

LoadedPixArt load_pixart(const std::string& path, const PixArtLoadOptions& options) {
  PixArtCheckpoint ckpt = read_pixart_checkpoint(path, options.use_weights);
  LoadedPixArt out;
  out.config = resolve_config(path, ckpt, options.config, &out.config_source);
  out.layout = ckpt.layout;
  out.format = ckpt.format;
  out.weights_key = ckpt.weights_key;
  out.metadata = ckpt.metadata;
  out.metadata.erase("_pos_embed_tokens");
  out.model = PixArtMS(out.config, at::TensorOptions().dtype(options.dtype).device(options.device),
                       /*initialize=*/false);
  try {
    out.report = load_state_dict(out.model, ckpt.tensors, /*strict=*/true);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (loading '" + path + "', config " + out.config_source + ")");
  }
  out.has_null_caption = ckpt.tensors.contains(kNullCaption);
  out.model->eval();
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Weight inheritance
// ---------------------------------------------------------------------------------------------------------
LoadReport inherit_lit_t2i_from_pixart(PixArtMS& lit_model, const StateDict& pixart_weights) {
  if (lit_model->device().is_meta()) throw Error("weight inheritance: the model lives on the meta device");
  LoadReport report;
  const StateDict own = state_dict(lit_model);
  for (const auto& [name, dst] : own) {
    if (is_self_attention_tensor(name)) {
      report.initialised.push_back(name);
      report.initialised_params += dst.numel();
      continue;
    }
    if (!pixart_weights.contains(name)) {
      if (name == kNullCaption) {
        report.missing.push_back(name);
        continue;
      }
      throw Error("weight inheritance: the PixArt checkpoint lacks '" + name + "' (" + shape_string(dst.sizes()) +
                  " in " + model_label(lit_model) + ")");
    }
    const at::Tensor& src = pixart_weights.at(name);
    if (src.sizes() != dst.sizes())
      throw Error("weight inheritance: tensor '" + name + "' has shape " + shape_string(src.sizes()) +
                  " in the PixArt checkpoint, " + model_label(lit_model) + " expects " + shape_string(dst.sizes()));
    report.loaded.push_back(name);
    report.loaded_params += dst.numel();
  }
  for (const auto& [name, tensor] : pixart_weights) {
    if (is_self_attention_tensor(name) || name == "pos_embed") {
      report.skipped.push_back(name);
      report.skipped_params += tensor.numel();
    } else if (!own.contains(name)) {
      report.unexpected.push_back(name);
    }
  }
  if (!report.unexpected.empty())
    throw Error("weight inheritance: the PixArt checkpoint has " + std::to_string(report.unexpected.size()) +
                " tensors that " + model_label(lit_model) + " lacks: " + name_list(report.unexpected) +
                " (a LiT-T2I inherits from a PixArt of the same depth and width)");
  at::NoGradGuard no_grad;
  for (const std::string& name : report.loaded) {
    at::Tensor dst = own.at(name);
    dst.copy_(pixart_weights.at(name));
  }
  for (const std::string& name : report.missing) {
    at::Tensor dst = own.at(name);
    dst.zero_();
  }
  for (auto& block : lit_model->blocks) block->attn->reset_parameters();
  return report;
}

PixArtConfig lit_t2i_config_from_pixart(const PixArtConfig& pixart, int64_t heads) {
  PixArtConfig c = pixart;
  c.attention = AttentionType::Linear;
  c.linear_heads = heads > 0 ? heads : (pixart.hidden_size <= 768 ? 2 : 4);
  c.dwc_kernel = 5;
  c.validate();
  return c;
}

LoadedPixArt load_lit_t2i_from_pixart(const std::string& pixart_path, const PixArtConfig& lit_config,
                                      const PixArtLoadOptions& options) {
  if (!lit_config.is_linear())
    throw Error(
        "weight inheritance: the target config has softmax attention; a LiT-T2I needs \"attention\": \"linear\"");
  PixArtCheckpoint ckpt = read_pixart_checkpoint(pixart_path, options.use_weights);
  LoadedPixArt out;
  out.config = lit_config;
  out.config_source = "given";
  out.layout = ckpt.layout;
  out.format = ckpt.format;
  out.weights_key = ckpt.weights_key;
  out.model = PixArtMS(lit_config, at::TensorOptions().dtype(options.dtype).device(options.device),
                       /*initialize=*/false);
  try {
    out.report = inherit_lit_t2i_from_pixart(out.model, ckpt.tensors);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (inheriting from '" + pixart_path + "')");
  }
  out.has_null_caption = ckpt.tensors.contains(kNullCaption);
  out.model->eval();
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Saving and converting
// ---------------------------------------------------------------------------------------------------------
void save_pixart(const std::string& path, const PixArtMS& model, std::optional<at::ScalarType> dtype,
                 const std::map<std::string, std::string>& metadata) {
  if (model->device().is_meta()) throw Error("PixArt save: the model lives on the meta device (shapes only)");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, tensor] : state_dict(model)) tensors.emplace_back(name, dtype ? tensor.to(*dtype) : tensor);
  std::map<std::string, std::string> meta = metadata;
  meta["config"] = model->config().to_json();
  write_safetensors(path, tensors, meta);
}

PixArtConvertResult convert_pixart_checkpoint(const std::string& input, const std::string& output,
                                              std::optional<at::ScalarType> dtype, const std::string& use_weights,
                                              const std::string& config_path,
                                              const std::map<std::string, std::string>& metadata) {
  PixArtCheckpoint ckpt = read_pixart_checkpoint(input, use_weights);
  PixArtConvertResult r;
  std::optional<PixArtConfig> given;
  if (!config_path.empty()) given = parse_config_text(read_text(config_path), config_path);
  r.config = resolve_config(input, ckpt, given, &r.config_source);
  if (r.config_source == "given") r.config_source = config_path;
  // Build on the meta device to check every name and shape against the config before writing anything.
  PixArtMS shapes(r.config, at::TensorOptions().dtype(at::kFloat).device(at::kMeta), /*initialize=*/false);
  const StateDict own = state_dict(shapes);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, dst] : own) {
    if (!ckpt.tensors.contains(name)) {
      if (name == kNullCaption) continue;
      throw Error("PixArt convert: '" + input + "' lacks '" + name + "' (" + shape_string(dst.sizes()) +
                  " for the config " + r.config_source + ")");
    }
    const at::Tensor& src = ckpt.tensors.at(name);
    if (src.sizes() != dst.sizes())
      throw Error("PixArt convert: tensor '" + name + "' has shape " + shape_string(src.sizes()) + ", the config (" +
                  r.config_source + ") expects " + shape_string(dst.sizes()));
    tensors.emplace_back(name, dtype && at::isFloatingType(src.scalar_type()) ? src.to(*dtype) : src);
    r.parameter_count += static_cast<uint64_t>(src.numel());
  }
  for (const auto& [name, tensor] : ckpt.tensors)
    if (!own.contains(name)) throw Error("PixArt convert: '" + input + "' has '" + name + "', which the config lacks");
  std::map<std::string, std::string> meta;
  for (const auto& [k, v] : ckpt.metadata)
    if (k != "config" && k.rfind('_', 0) != 0 && k != "format") meta[k] = v;
  for (const auto& [k, v] : metadata) meta[k] = v;
  meta["config"] = r.config.to_json();
  write_safetensors(output, tensors, meta);
  r.layout = ckpt.layout;
  r.format = ckpt.format;
  r.weights_key = ckpt.weights_key;
  r.tensor_count = tensors.size();
  r.dropped = ckpt.dropped;
  r.has_null_caption = ckpt.tensors.contains(kNullCaption);
  return r;
}

}  // namespace lit
