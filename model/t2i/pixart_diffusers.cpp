#include "model/t2i/pixart_diffusers.h"

#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "common/error.h"

namespace lit {
namespace {

using nlohmann::json;

// "weight" / "bias" suffix of a name ending in ".weight" or ".bias", else "".
std::string param_suffix(const std::string& name) {
  for (const char* s : {".weight", ".bias"}) {
    const std::string suffix = s;
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return suffix;
  }
  return "";
}

}  // namespace

bool is_diffusers_pixart_state_dict(const StateDict& tensors) {
  return tensors.contains("adaln_single.linear.weight");
}

StateDict pixart_from_diffusers(const StateDict& in) {
  static const std::map<std::string, std::string> kTop = {
      {"pos_embed.proj", "x_embedder.proj"},
      {"caption_projection.linear_1", "y_embedder.y_proj.fc1"},
      {"caption_projection.linear_2", "y_embedder.y_proj.fc2"},
      {"adaln_single.emb.timestep_embedder.linear_1", "t_embedder.mlp.0"},
      {"adaln_single.emb.timestep_embedder.linear_2", "t_embedder.mlp.2"},
      {"adaln_single.emb.resolution_embedder.linear_1", "csize_embedder.mlp.0"},
      {"adaln_single.emb.resolution_embedder.linear_2", "csize_embedder.mlp.2"},
      {"adaln_single.emb.aspect_ratio_embedder.linear_1", "ar_embedder.mlp.0"},
      {"adaln_single.emb.aspect_ratio_embedder.linear_2", "ar_embedder.mlp.2"},
      {"adaln_single.linear", "t_block.1"},
      {"proj_out", "final_layer.linear"},
  };
  static const std::map<std::string, std::string> kBlock = {
      {"attn1.to_out.0", "attn.proj"},
      {"attn2.to_q", "cross_attn.q_linear"},
      {"attn2.to_out.0", "cross_attn.proj"},
      {"ff.net.0.proj", "mlp.fc1"},
      {"ff.net.2", "mlp.fc2"},
  };
  static const std::regex kBlockName(R"(transformer_blocks\.(\d+)\.(.+))");

  StateDict out;
  // Concatenations: official name -> parts in order.
  std::map<std::string, std::string> concat_prefix;  // official name -> "transformer_blocks.i.attnN."
  std::vector<std::string> order;
  for (const auto& [name, tensor] : in) {
    if (name == "scale_shift_table") {
      out.insert("final_layer.scale_shift_table", tensor);
      continue;
    }
    const std::string suffix = param_suffix(name);
    const std::string stem = suffix.empty() ? name : name.substr(0, name.size() - suffix.size());
    if (auto it = kTop.find(stem); it != kTop.end() && !suffix.empty()) {
      out.insert(it->second + suffix, tensor);
      continue;
    }
    std::smatch m;
    if (std::regex_match(name, m, kBlockName)) {
      const std::string block = "blocks." + m[1].str() + ".", rest = m[2].str();
      if (rest == "scale_shift_table") {
        out.insert(block + "scale_shift_table", tensor);
        continue;
      }
      const std::string rest_stem = suffix.empty() ? rest : rest.substr(0, rest.size() - suffix.size());
      if (auto it = kBlock.find(rest_stem); it != kBlock.end() && !suffix.empty()) {
        out.insert(block + it->second + suffix, tensor);
        continue;
      }
      std::string target;
      if (rest_stem == "attn1.to_q" || rest_stem == "attn1.to_k" || rest_stem == "attn1.to_v")
        target = block + "attn.qkv" + suffix;
      else if (rest_stem == "attn2.to_k" || rest_stem == "attn2.to_v")
        target = block + "cross_attn.kv_linear" + suffix;
      if (!target.empty() && !suffix.empty()) {
        if (!concat_prefix.count(target)) order.push_back(target);
        concat_prefix[target] = "transformer_blocks." + m[1].str() + "." + rest_stem.substr(0, 6);
        continue;
      }
    }
    throw Error("diffusers PixArt: tensor '" + name + "' has no counterpart in the official layout");
  }
  for (const std::string& target : order) {
    const bool self = target.find(".attn.qkv") != std::string::npos;
    const std::string suffix = param_suffix(target), prefix = concat_prefix.at(target);
    std::vector<std::string> parts =
        self ? std::vector<std::string>{"to_q", "to_k", "to_v"} : std::vector<std::string>{"to_k", "to_v"};
    std::vector<at::Tensor> tensors;
    for (const std::string& p : parts) {
      const std::string name = prefix + p + suffix;
      if (!in.contains(name)) throw Error("diffusers PixArt: '" + name + "' is missing (needed for '" + target + "')");
      tensors.push_back(in.at(name));
    }
    out.insert(target, at::cat(tensors, 0));
  }
  return out;
}

PixArtConfig pixart_config_from_diffusers_json(const std::string& text, const std::string& what) {
  auto error = [&](const std::string& message) { return Error("diffusers PixArt config '" + what + "': " + message); };
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw error(std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) throw error("expected a JSON object");
  const std::string cls = j.value("_class_name", "");
  if (cls != "PixArtTransformer2DModel" && cls != "Transformer2DModel")
    throw error("_class_name is '" + cls + "', expected PixArtTransformer2DModel");
  if (j.contains("norm_type") && j["norm_type"] != "ada_norm_single")
    throw error("norm_type is " + j["norm_type"].dump() + ", a PixArt model has \"ada_norm_single\"");
  auto get_int = [&](const char* key) -> int64_t {
    if (!j.contains(key) || !j[key].is_number_integer())
      throw error(std::string("'") + key + "' missing or not an integer");
    return j[key].get<int64_t>();
  };
  PixArtConfig c;
  c.input_size = get_int("sample_size");
  c.patch_size = get_int("patch_size");
  c.in_channels = get_int("in_channels");
  const int64_t out_channels =
      j.contains("out_channels") && !j["out_channels"].is_null() ? get_int("out_channels") : c.in_channels;
  if (out_channels != c.in_channels && out_channels != 2 * c.in_channels)
    throw error("out_channels " + std::to_string(out_channels) + " is neither in_channels nor twice it");
  c.pred_sigma = out_channels == 2 * c.in_channels;
  c.num_heads = get_int("num_attention_heads");
  c.hidden_size = c.num_heads * get_int("attention_head_dim");
  c.depth = get_int("num_layers");
  c.caption_channels = get_int("caption_channels");
  if (j.contains("cross_attention_dim") && !j["cross_attention_dim"].is_null() &&
      j["cross_attention_dim"].get<int64_t>() != c.hidden_size)
    throw error("cross_attention_dim differs from the width (not a PixArt model)");
  if (j.contains("interpolation_scale") && !j["interpolation_scale"].is_null())
    c.pe_interpolation = j["interpolation_scale"].get<double>();
  else
    c.pe_interpolation = static_cast<double>(std::max<int64_t>(c.input_size / 64, 1));
  if (j.contains("use_additional_conditions") && !j["use_additional_conditions"].is_null())
    c.micro_condition = j["use_additional_conditions"].get<bool>();
  else
    c.micro_condition = c.input_size == 128;
  c.model_max_length = c.micro_condition ? 120 : 300;
  try {
    c.validate();
  } catch (const Error& e) {
    throw error(e.what());
  }
  return c;
}

}  // namespace lit
