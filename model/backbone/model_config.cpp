#include "model/backbone/model_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/format.h"
#include "common/input_file.h"
#include "model/backbone/config_fields.h"
#include "weights/state_dict.h"

namespace lit {
namespace {

using nlohmann::json;

Error config_error(const std::string& message) {
  return Error("model config: " + message);
}

// ---------------------------------------------------------------------------------------------------------
// Presets: the released DiT sizes (models.py's DiT_XL_2 ... DiT_S_8) and their LiT counterparts
// ---------------------------------------------------------------------------------------------------------
struct Size {
  const char* name;
  int64_t depth, hidden, dit_heads, lit_heads;
};
constexpr Size kSizes[] = {
    {"XL", 28, 1152, 16, 4},
    {"L", 24, 1024, 16, 4},
    {"B", 12, 768, 12, 2},
    {"S", 12, 384, 6, 2},
};
constexpr int64_t kPatches[] = {2, 4, 8};

}  // namespace

const char* attention_type_name(AttentionType type) {
  return type == AttentionType::Linear ? "linear" : "softmax";
}

// ---------------------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------------------
void ModelConfig::validate() const {
  auto positive = [](const char* key, int64_t v) {
    if (v <= 0) throw config_error(std::string("'") + key + "' must be positive, got " + std::to_string(v));
  };
  positive("input_size", input_size);
  positive("patch_size", patch_size);
  positive("in_channels", in_channels);
  positive("hidden_size", hidden_size);
  positive("depth", depth);
  positive("num_heads", num_heads);
  positive("num_classes", num_classes);
  if (input_size % patch_size != 0)
    throw config_error("input_size " + std::to_string(input_size) + " is not divisible by patch_size " +
                       std::to_string(patch_size));
  if (hidden_size % num_heads != 0)
    throw config_error("hidden_size " + std::to_string(hidden_size) + " is not divisible by num_heads " +
                       std::to_string(num_heads));
  // The 2-D sin-cos position embedding gives each axis D/2 channels, half sines and half cosines.
  if (hidden_size % 4 != 0)
    throw config_error("hidden_size " + std::to_string(hidden_size) +
                       " must be a multiple of 4 (2-D sin-cos position embedding)");
  if (!(mlp_ratio > 0) || !std::isfinite(mlp_ratio) || mlp_hidden_size() < 1)
    throw config_error("mlp_ratio must give an MLP width of at least 1, got " + std::to_string(mlp_ratio));
  if (!(class_dropout_prob >= 0 && class_dropout_prob < 1))
    throw config_error("class_dropout_prob must be in [0, 1), got " + std::to_string(class_dropout_prob));
  if (is_linear() && (dwc_kernel < 1 || dwc_kernel % 2 == 0))
    throw config_error("dwc_kernel must be a positive odd number, got " + std::to_string(dwc_kernel));
}

// ---------------------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------------------
std::string ModelConfig::to_json(int indent) const {
  json j = json::object();
  j["input_size"] = input_size;
  j["patch_size"] = patch_size;
  j["in_channels"] = in_channels;
  j["hidden_size"] = hidden_size;
  j["depth"] = depth;
  j["num_heads"] = num_heads;
  j["mlp_ratio"] = mlp_ratio;
  j["class_dropout_prob"] = class_dropout_prob;
  j["num_classes"] = num_classes;
  j["learn_sigma"] = learn_sigma;
  j["attention"] = attention_type_name(attention);
  if (is_linear()) j["dwc_kernel"] = dwc_kernel;
  return j.dump(indent);
}

ModelConfig ModelConfig::from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw config_error(std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) throw config_error("expected a JSON object, got " + std::string(j.type_name()));

  static const std::set<std::string> known = {"input_size",  "patch_size",  "in_channels", "hidden_size",
                                              "depth",       "num_heads",   "mlp_ratio",   "class_dropout_prob",
                                              "num_classes", "learn_sigma", "attention",   "dwc_kernel"};
  for (const auto& item : j.items()) {
    const std::string& key = item.key();
    if (!known.count(key) && key != "note" && key.rfind('_', 0) != 0) throw config_error("unknown key '" + key + "'");
  }
  const ConfigFields f(j, "model config");
  f.require({"input_size", "patch_size", "in_channels", "hidden_size", "depth", "num_heads"});

  ModelConfig c;
  f.read("input_size", c.input_size);
  f.read("patch_size", c.patch_size);
  f.read("in_channels", c.in_channels);
  f.read("hidden_size", c.hidden_size);
  f.read("depth", c.depth);
  f.read("num_heads", c.num_heads);
  f.read("mlp_ratio", c.mlp_ratio);
  f.read("class_dropout_prob", c.class_dropout_prob);
  f.read("num_classes", c.num_classes);
  f.read("learn_sigma", c.learn_sigma);
  f.read("attention", c.attention);
  if (j.contains("dwc_kernel") && !c.is_linear())
    throw config_error("'dwc_kernel' only applies to \"attention\": \"linear\"");
  f.read("dwc_kernel", c.dwc_kernel);
  c.validate();
  return c;
}

ModelConfig ModelConfig::from_json_file(const std::string& path) {
  const std::string text = read_input_file(path, uint64_t(16) << 20);  // regular files only, size capped
  try {
    return from_json(text);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (in '" + path + "')");
  }
}

// ---------------------------------------------------------------------------------------------------------
// Presets
// ---------------------------------------------------------------------------------------------------------
std::vector<std::string> ModelConfig::preset_names() {
  std::vector<std::string> names;
  for (const char* family : {"DiT", "LiT"})
    for (const Size& s : kSizes)
      for (int64_t p : kPatches) names.push_back(std::string(family) + "-" + s.name + "/" + std::to_string(p));
  return names;
}

ModelConfig ModelConfig::preset(const std::string& name, int64_t image_size) {
  if (image_size <= 0 || image_size % 8 != 0)
    throw config_error("image size " + std::to_string(image_size) + " is not a positive multiple of 8 (VAE latents)");
  // "DiT-XL/2"; "DiT-XL-2" (the released file names' spelling) is accepted too.
  for (const char* family : {"DiT", "LiT"})
    for (const Size& s : kSizes)
      for (int64_t p : kPatches) {
        const std::string stem = std::string(family) + "-" + s.name;
        if (name != stem + "/" + std::to_string(p) && name != stem + "-" + std::to_string(p)) continue;
        ModelConfig c;
        c.input_size = image_size / 8;
        c.patch_size = p;
        c.in_channels = 4;
        c.hidden_size = s.hidden;
        c.depth = s.depth;
        const bool lit = family[0] == 'L';
        c.num_heads = lit ? s.lit_heads : s.dit_heads;
        c.attention = lit ? AttentionType::Linear : AttentionType::Softmax;
        c.validate();
        return c;
      }
  throw config_error("unknown model '" + name + "' (known: DiT-XL/2 ... DiT-S/8, LiT-XL/2 ... LiT-S/8)");
}

std::string ModelConfig::preset_name() const {
  for (const std::string& name : preset_names()) {
    ModelConfig p = preset(name);
    p.input_size = input_size;
    if (p == *this) return name;
  }
  return "custom";
}

std::string ModelConfig::summary() const {
  std::ostringstream s;
  s << preset_name() << ": " << input_size << "x" << input_size << "x" << in_channels << " input, patch " << patch_size
    << " (" << num_patches() << " tokens), " << depth << " blocks, width " << hidden_size << ", " << num_heads << " "
    << attention_type_name(attention) << " heads";
  if (is_linear()) s << " (dwc " << dwc_kernel << "x" << dwc_kernel << ")";
  s << ", mlp ratio " << mlp_ratio << ", " << num_classes << " classes" << (has_null_class() ? " + null" : "")
    << (learn_sigma ? ", learned sigma" : "");
  return s.str();
}

bool ModelConfig::operator==(const ModelConfig& o) const {
  return input_size == o.input_size && patch_size == o.patch_size && in_channels == o.in_channels &&
         hidden_size == o.hidden_size && depth == o.depth && num_heads == o.num_heads && mlp_ratio == o.mlp_ratio &&
         class_dropout_prob == o.class_dropout_prob && num_classes == o.num_classes && learn_sigma == o.learn_sigma &&
         attention == o.attention && (!is_linear() || dwc_kernel == o.dwc_kernel);
}

// ---------------------------------------------------------------------------------------------------------
// Inference from tensor shapes
// ---------------------------------------------------------------------------------------------------------
ModelConfig infer_config(const StateDict& w) {
  auto error = [](const std::string& message) { return Error("cannot infer the model config: " + message); };
  auto shape = [&](const std::string& name) {
    if (!w.contains(name)) throw error("no tensor '" + name + "' (not a DiT/LiT state dict?)");
    return w.at(name).sizes();
  };

  ModelConfig c;
  const auto patch = shape("x_embedder.proj.weight");  // (D, C, p, p)
  if (patch.size() != 4 || patch[2] != patch[3])
    throw error("x_embedder.proj.weight has shape " + shape_string(patch) + ", expected (D, C, p, p)");
  c.hidden_size = patch[0];
  c.in_channels = patch[1];
  c.patch_size = patch[2];

  const auto pos = shape("pos_embed");  // (1, T, D)
  if (pos.size() != 3) throw error("pos_embed has shape " + shape_string(pos) + ", expected (1, T, D)");
  const auto grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(pos[1]))));
  if (grid * grid != pos[1]) throw error("pos_embed holds " + std::to_string(pos[1]) + " tokens, not a square grid");
  c.input_size = grid * c.patch_size;

  c.depth = 0;
  while (w.contains("blocks." + std::to_string(c.depth) + ".adaLN_modulation.1.weight")) ++c.depth;
  if (c.depth == 0) throw error("no blocks.0.adaLN_modulation.1.weight (not a DiT/LiT state dict?)");

  const auto fc1 = shape("blocks.0.mlp.fc1.weight");  // (mlp_hidden, D)
  c.mlp_ratio = static_cast<double>(fc1[0]) / static_cast<double>(c.hidden_size);

  const auto table = shape("y_embedder.embedding_table.weight");  // (classes + null, D)
  c.num_classes = table[0] - 1;
  c.class_dropout_prob = 0.1;
  if (c.num_classes < 1) throw error("the label table has " + std::to_string(table[0]) + " rows");

  const auto out = shape("final_layer.linear.weight");  // (p*p*out_channels, D)
  const int64_t out_channels = out[0] / (c.patch_size * c.patch_size);
  if (out_channels * c.patch_size * c.patch_size != out[0] ||
      (out_channels != c.in_channels && out_channels != 2 * c.in_channels))
    throw error("final_layer.linear.weight has " + std::to_string(out[0]) + " rows, not p*p*C or p*p*2C");
  c.learn_sigma = out_channels == 2 * c.in_channels;

  if (w.contains("blocks.0.attn.q.weight")) {
    c.attention = AttentionType::Linear;
    const auto dwc = shape("blocks.0.attn.dwc.weight");  // (d, 1, k, k), d = D / heads
    if (dwc.size() != 4 || dwc[0] <= 0 || c.hidden_size % dwc[0] != 0)
      throw error("blocks.0.attn.dwc.weight has shape " + shape_string(dwc) + ", expected (D/heads, 1, k, k)");
    c.num_heads = c.hidden_size / dwc[0];
    c.dwc_kernel = dwc[2];
  } else if (w.contains("blocks.0.attn.qkv.weight")) {
    c.attention = AttentionType::Softmax;
    int64_t heads = 0;
    for (const auto& s : kSizes)
      if (s.hidden == c.hidden_size) heads = s.dit_heads;
    if (heads == 0)
      throw error("a softmax-attention model of width " + std::to_string(c.hidden_size) +
                  " is no released configuration and its head count is not in its weights: give the config "
                  "(--config)");
    c.num_heads = heads;
  } else {
    throw error("blocks.0.attn has neither qkv (softmax) nor q/kv (linear attention) weights");
  }
  try {
    c.validate();
  } catch (const Error& e) {
    throw error(e.what());
  }
  return c;
}

}  // namespace lit
