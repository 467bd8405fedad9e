#include "model/t2i/pixart_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/error.h"
#include "model/backbone/config_fields.h"

namespace lit {
namespace {

using nlohmann::json;

Error config_error(const std::string& message) {
  return Error("PixArt config: " + message);
}

constexpr const char* kFamilies[] = {"PixArt-Sigma-XL/2", "PixArt-Alpha-XL/2", "LiT-T2I-XL/2"};

}  // namespace

void PixArtConfig::validate() const {
  auto positive = [](const char* key, int64_t v) {
    if (v <= 0) throw config_error(std::string("'") + key + "' must be positive, got " + std::to_string(v));
  };
  positive("input_size", input_size);
  positive("patch_size", patch_size);
  positive("in_channels", in_channels);
  positive("hidden_size", hidden_size);
  positive("depth", depth);
  positive("num_heads", num_heads);
  positive("caption_channels", caption_channels);
  positive("model_max_length", model_max_length);
  if (base_size < 0) throw config_error("'base_size' must be positive (or 0: input_size / patch_size)");
  if (input_size % patch_size != 0)
    throw config_error("input_size " + std::to_string(input_size) + " is not divisible by patch_size " +
                       std::to_string(patch_size));
  if (hidden_size % num_heads != 0)
    throw config_error("hidden_size " + std::to_string(hidden_size) + " is not divisible by num_heads " +
                       std::to_string(num_heads));
  if (hidden_size % 4 != 0)
    throw config_error("hidden_size " + std::to_string(hidden_size) +
                       " must be a multiple of 4 (2-D sin-cos position embedding)");
  if (micro_condition && hidden_size % 3 != 0)
    throw config_error("micro_condition needs hidden_size divisible by 3 (size and aspect embedders), got " +
                       std::to_string(hidden_size));
  if (!(mlp_ratio > 0) || !std::isfinite(mlp_ratio) || mlp_hidden_size() < 1)
    throw config_error("mlp_ratio must give an MLP width of at least 1, got " + std::to_string(mlp_ratio));
  if (!(class_dropout_prob >= 0 && class_dropout_prob < 1))
    throw config_error("class_dropout_prob must be in [0, 1), got " + std::to_string(class_dropout_prob));
  if (!(pe_interpolation > 0) || !std::isfinite(pe_interpolation))
    throw config_error("pe_interpolation must be positive, got " + std::to_string(pe_interpolation));
  if (is_linear()) {
    positive("linear_heads", linear_heads);
    if (hidden_size % linear_heads != 0)
      throw config_error("hidden_size " + std::to_string(hidden_size) + " is not divisible by linear_heads " +
                         std::to_string(linear_heads));
    if (dwc_kernel < 1 || dwc_kernel % 2 == 0)
      throw config_error("dwc_kernel must be a positive odd number, got " + std::to_string(dwc_kernel));
  }
}

std::string PixArtConfig::to_json(int indent) const {
  json j = json::object();
  j["model"] = "PixArtMS";
  j["input_size"] = input_size;
  j["patch_size"] = patch_size;
  j["in_channels"] = in_channels;
  j["hidden_size"] = hidden_size;
  j["depth"] = depth;
  j["num_heads"] = num_heads;
  j["mlp_ratio"] = mlp_ratio;
  j["class_dropout_prob"] = class_dropout_prob;
  j["pred_sigma"] = pred_sigma;
  j["caption_channels"] = caption_channels;
  j["pe_interpolation"] = pe_interpolation;
  j["base_size"] = effective_base_size();
  j["model_max_length"] = model_max_length;
  j["micro_condition"] = micro_condition;
  j["attention"] = attention_type_name(attention);
  if (is_linear()) {
    j["linear_heads"] = linear_heads;
    j["dwc_kernel"] = dwc_kernel;
  }
  return j.dump(indent);
}

bool PixArtConfig::is_pixart_json(const std::string& text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return false;
  return (j.contains("model") && j["model"] == "PixArtMS") || j.contains("caption_channels");
}

PixArtConfig PixArtConfig::from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw config_error(std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) throw config_error("expected a JSON object, got " + std::string(j.type_name()));
  static const std::set<std::string> known = {
      "model",           "input_size",       "patch_size",       "in_channels",        "hidden_size",
      "depth",           "num_heads",        "mlp_ratio",        "class_dropout_prob", "pred_sigma",
      "learn_sigma",     "caption_channels", "pe_interpolation", "base_size",          "model_max_length",
      "micro_condition", "attention",        "linear_heads",     "dwc_kernel"};
  for (const auto& item : j.items()) {
    const std::string& key = item.key();
    if (!known.count(key) && key != "note" && key.rfind('_', 0) != 0) throw config_error("unknown key '" + key + "'");
  }
  if (j.contains("model") && j["model"] != "PixArtMS")
    throw config_error("'model' must be \"PixArtMS\", got " + j["model"].dump());
  const ConfigFields f(j, "PixArt config");
  f.require({"input_size", "patch_size", "in_channels", "hidden_size", "depth", "num_heads", "caption_channels"});

  PixArtConfig c;
  f.read("input_size", c.input_size);
  f.read("patch_size", c.patch_size);
  f.read("in_channels", c.in_channels);
  f.read("hidden_size", c.hidden_size);
  f.read("depth", c.depth);
  f.read("num_heads", c.num_heads);
  f.read("caption_channels", c.caption_channels);
  f.read("mlp_ratio", c.mlp_ratio);
  f.read("class_dropout_prob", c.class_dropout_prob);
  f.read("learn_sigma", c.pred_sigma);
  f.read("pred_sigma", c.pred_sigma);
  f.read("pe_interpolation", c.pe_interpolation);
  if (j.contains("base_size") && !j["base_size"].is_null()) f.read("base_size", c.base_size);
  f.read("model_max_length", c.model_max_length);
  f.read("micro_condition", c.micro_condition);
  f.read("attention", c.attention);
  for (const char* key : {"linear_heads", "dwc_kernel"})
    if (j.contains(key) && !c.is_linear())
      throw config_error(std::string("'") + key + "' only applies to \"attention\": \"linear\"");
  f.read("linear_heads", c.linear_heads);
  f.read("dwc_kernel", c.dwc_kernel);
  // base_size equal to the default is stored explicitly by to_json; keep the canonical 0 for comparisons.
  if (c.base_size == c.input_size / c.patch_size && c.input_size % c.patch_size == 0) c.base_size = 0;
  c.validate();
  return c;
}

PixArtConfig PixArtConfig::from_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("PixArt config: cannot open '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return from_json(text.str());
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (in '" + path + "')");
  }
}

std::vector<std::string> PixArtConfig::preset_names() {
  return {std::begin(kFamilies), std::end(kFamilies)};
}

PixArtConfig PixArtConfig::preset(const std::string& name, int64_t image_size) {
  if (image_size <= 0 || image_size % 16 != 0)
    throw config_error("image size " + std::to_string(image_size) +
                       " is not a positive multiple of 16 (VAE latents, patch 2)");
  auto is = [&](const char* preset) {
    const std::string p = preset;
    std::string dashed = p;
    dashed.replace(dashed.rfind('/'), 1, "-");  // "PixArt-Sigma-XL-2", the released files' spelling
    return name == p || name == dashed;
  };
  PixArtConfig c;
  c.input_size = image_size / 8;
  c.pe_interpolation = static_cast<double>(image_size) / 512.0;
  if (is("PixArt-Sigma-XL/2") || is("LiT-T2I-XL/2")) {
    c.model_max_length = 300;
    if (is("LiT-T2I-XL/2")) {
      c.attention = AttentionType::Linear;
      c.linear_heads = 4;
      c.dwc_kernel = 5;
    }
  } else if (is("PixArt-Alpha-XL/2")) {
    c.model_max_length = 120;
    c.micro_condition = image_size == 1024;
  } else {
    throw config_error("unknown model '" + name + "' (known: PixArt-Sigma-XL/2, PixArt-Alpha-XL/2, LiT-T2I-XL/2)");
  }
  c.validate();
  return c;
}

std::string PixArtConfig::preset_name() const {
  if (input_size % 2 != 0) return "custom";
  for (const std::string& name : preset_names()) {
    try {
      if (preset(name, input_size * 8) == *this) return name;
    } catch (const Error&) {
    }
  }
  return "custom";
}

std::string PixArtConfig::summary() const {
  std::ostringstream s;
  s << preset_name() << ": " << input_size << "x" << input_size << "x" << in_channels << " input, patch " << patch_size
    << ", " << depth << " blocks, width " << hidden_size << ", ";
  if (is_linear())
    s << linear_heads << " linear self-attention heads (dwc " << dwc_kernel << "x" << dwc_kernel << ") + " << num_heads
      << " cross-attention heads";
  else
    s << num_heads << " softmax heads";
  s << ", captions " << model_max_length << "x" << caption_channels << ", pe_interpolation " << pe_interpolation
    << (micro_condition ? ", micro-conditions" : "") << (pred_sigma ? ", learned sigma" : "");
  return s.str();
}

bool PixArtConfig::operator==(const PixArtConfig& o) const {
  return input_size == o.input_size && patch_size == o.patch_size && in_channels == o.in_channels &&
         hidden_size == o.hidden_size && depth == o.depth && num_heads == o.num_heads && mlp_ratio == o.mlp_ratio &&
         class_dropout_prob == o.class_dropout_prob && pred_sigma == o.pred_sigma &&
         caption_channels == o.caption_channels && pe_interpolation == o.pe_interpolation &&
         effective_base_size() == o.effective_base_size() && model_max_length == o.model_max_length &&
         micro_condition == o.micro_condition && attention == o.attention &&
         (!is_linear() || (linear_heads == o.linear_heads && dwc_kernel == o.dwc_kernel));
}

}  // namespace lit
