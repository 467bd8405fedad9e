#include "model/text/t5_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"

namespace lit::text {

bool T5Config::is_gated_act() const {
  return feed_forward_proj.rfind("gated-", 0) == 0;
}

std::string T5Config::dense_act_fn() const {
  if (feed_forward_proj == "gated-gelu") return "gelu_new";  // transformers' backwards-compatibility rule
  return is_gated_act() ? feed_forward_proj.substr(6) : feed_forward_proj;
}

T5Config T5Config::t5_v1_1_xxl() {
  T5Config c;
  c.vocab_size = 32128;
  c.d_model = 4096;
  c.d_kv = 64;
  c.d_ff = 10240;
  c.num_layers = 24;
  c.num_heads = 64;
  c.feed_forward_proj = "gated-gelu";
  return c;
}

std::string T5Config::summary() const {
  std::ostringstream s;
  s << "d_model " << d_model << ", " << num_layers << " layers, " << num_heads << " heads x " << d_kv << ", d_ff "
    << d_ff << ", " << feed_forward_proj << " (" << dense_act_fn() << "), vocab " << vocab_size << ", "
    << relative_attention_num_buckets << " position buckets up to " << relative_attention_max_distance;
  return s.str();
}

int64_t T5Config::parameter_count() const {
  const int64_t attention = 4 * d_model * inner_dim();
  const int64_t ffn = (is_gated_act() ? 3 : 2) * d_model * d_ff;
  return vocab_size * d_model + num_layers * (attention + ffn + 2 * d_model) + d_model +
         relative_attention_num_buckets * num_heads;
}

T5Config parse_t5_config(const std::string& json_text, const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(origin + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(origin + ": not a JSON object");
  const std::string model_type = j.value("model_type", std::string("t5"));
  if (model_type != "t5" && model_type != "mt5")
    throw Error(origin + ": model_type '" + model_type + "' is not a T5 encoder (t5 or mt5)");

  T5Config c;
  auto get_int = [&](const char* key, int64_t& field) {
    if (!j.contains(key)) return;
    if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0)
      throw Error(origin + ": '" + key + "' must be a positive integer");
    field = j[key].get<int64_t>();
  };
  get_int("vocab_size", c.vocab_size);
  get_int("d_model", c.d_model);
  get_int("d_kv", c.d_kv);
  get_int("d_ff", c.d_ff);
  get_int("num_layers", c.num_layers);
  get_int("num_heads", c.num_heads);
  get_int("relative_attention_num_buckets", c.relative_attention_num_buckets);
  get_int("relative_attention_max_distance", c.relative_attention_max_distance);
  if (j.contains("layer_norm_epsilon")) {
    if (!j["layer_norm_epsilon"].is_number() || j["layer_norm_epsilon"].get<double>() <= 0)
      throw Error(origin + ": 'layer_norm_epsilon' must be a positive number");
    c.layer_norm_epsilon = j["layer_norm_epsilon"].get<double>();
  }
  if (j.contains("feed_forward_proj")) {
    if (!j["feed_forward_proj"].is_string()) throw Error(origin + ": 'feed_forward_proj' must be a string");
    c.feed_forward_proj = j["feed_forward_proj"].get<std::string>();
  }
  const std::string& f = c.feed_forward_proj;
  const size_t dash = f.find('-');
  if (dash != std::string::npos && (!c.is_gated_act() || f.find('-', 6) != std::string::npos))
    throw Error(origin + ": feed_forward_proj '" + f + "' is not 'ACT' or 'gated-ACT'");
  const std::string act = c.dense_act_fn();
  if (act != "relu" && act != "gelu" && act != "gelu_new" && act != "silu")
    throw Error(origin + ": activation '" + act + "' of feed_forward_proj '" + f +
                "' is not supported (relu, gelu, gelu_new, silu)");
  if (c.relative_attention_num_buckets < 4) throw Error(origin + ": relative_attention_num_buckets must be at least 4");
  return c;
}

T5Config read_t5_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": missing (a T5 folder holds config.json beside its weights)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_t5_config(text.str(), path);
}

}  // namespace lit::text
