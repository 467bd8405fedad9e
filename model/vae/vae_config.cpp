#include "model/vae/vae_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/input_file.h"

namespace lit {
namespace {

using json = nlohmann::json;

// Reads `key` when present and not null; a value of the wrong type is an error naming the key.
template <typename T>
void read_key(const json& j, const char* key, T& out, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    out = it->get<T>();
  } catch (const json::exception&) {
    throw Error(origin + ": '" + key + "' has the wrong type (" + it->dump() + ")");
  }
}

void require_all(const json& j, const char* key, const char* expected, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end()) return;
  if (!it->is_array()) throw Error(origin + ": '" + key + "' should be a list");
  for (const auto& v : *it) {
    if (!v.is_string() || v.get<std::string>() != expected)
      throw Error(origin + ": unsupported " + key + " entry " + v.dump() + " (only " + expected + " is implemented)");
  }
}

}  // namespace

VaeConfig parse_vae_config(const std::string& json_text, const std::string& origin) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(origin + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object()) throw Error(origin + ": expected a JSON object");
  if (j.contains("_class_name") && j["_class_name"] != "AutoencoderKL")
    throw Error(origin + ": this is a " + j["_class_name"].dump() + " config, not an AutoencoderKL (a VAE)");
  for (const char* key : {"latent_channels", "block_out_channels"})
    if (!j.contains(key)) throw Error(origin + ": no '" + std::string(key) + "': not an AutoencoderKL config");

  VaeConfig c;
  read_key(j, "in_channels", c.in_channels, origin);
  read_key(j, "out_channels", c.out_channels, origin);
  read_key(j, "latent_channels", c.latent_channels, origin);
  read_key(j, "block_out_channels", c.block_out_channels, origin);
  read_key(j, "layers_per_block", c.layers_per_block, origin);
  read_key(j, "norm_num_groups", c.norm_num_groups, origin);
  read_key(j, "use_quant_conv", c.use_quant_conv, origin);
  read_key(j, "use_post_quant_conv", c.use_post_quant_conv, origin);
  read_key(j, "mid_block_add_attention", c.mid_block_add_attention, origin);
  read_key(j, "scaling_factor", c.scaling_factor, origin);
  read_key(j, "shift_factor", c.shift_factor, origin);
  read_key(j, "force_upcast", c.force_upcast, origin);

  std::string act = "silu";
  read_key(j, "act_fn", act, origin);
  if (act != "silu") throw Error(origin + ": act_fn '" + act + "' is not supported (only silu)");
  require_all(j, "down_block_types", "DownEncoderBlock2D", origin);
  require_all(j, "up_block_types", "UpDecoderBlock2D", origin);
  for (const char* key : {"down_block_types", "up_block_types"}) {
    if (j.contains(key) && j[key].size() != c.block_out_channels.size())
      throw Error(origin + ": " + key + " has " + std::to_string(j[key].size()) + " entries but block_out_channels " +
                  std::to_string(c.block_out_channels.size()));
  }

  if (c.block_out_channels.empty()) throw Error(origin + ": block_out_channels is empty");
  if (c.in_channels < 1 || c.out_channels < 1 || c.latent_channels < 1 || c.layers_per_block < 1 ||
      c.norm_num_groups < 1)
    throw Error(origin + ": channel, layer and group counts must be positive");
  for (int64_t ch : c.block_out_channels) {
    if (ch < 1 || ch % c.norm_num_groups != 0)
      throw Error(origin + ": block_out_channels entry " + std::to_string(ch) + " is not a positive multiple of " +
                  "norm_num_groups " + std::to_string(c.norm_num_groups));
  }
  if (!(c.scaling_factor > 0)) throw Error(origin + ": scaling_factor must be positive");
  return c;
}

VaeConfig read_vae_config(const std::string& path) {
  return parse_vae_config(read_input_file(path, uint64_t(16) << 20), path);
}

}  // namespace lit
