#include "model/text/t5_init.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/input_file.h"
#include "model/text/tokenizer.h"
#include "weights/safetensors.h"

namespace fs = std::filesystem;

namespace lit::text {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// transformers' _init_weights, by the tensor's state-dict name (see the header): the std of its normal draw,
// or a negative value for the RMS-norm weights, which are constant.
double init_std(const std::string& name, const T5Config& c, double f) {
  const auto inv_sqrt = [](double x) { return 1.0 / std::sqrt(x); };
  const double d_model = static_cast<double>(c.d_model);
  if (name == "shared.weight") return f;
  if (ends_with(name, "layer_norm.weight")) return -1.0;
  if (ends_with(name, "SelfAttention.q.weight")) return f * inv_sqrt(d_model * static_cast<double>(c.d_kv));
  if (ends_with(name, "SelfAttention.k.weight") || ends_with(name, "SelfAttention.v.weight"))
    return f * inv_sqrt(d_model);
  if (ends_with(name, "SelfAttention.o.weight")) return f * inv_sqrt(static_cast<double>(c.inner_dim()));
  if (ends_with(name, "relative_attention_bias.weight")) return f * inv_sqrt(d_model);
  if (ends_with(name, "DenseReluDense.wi.weight") || ends_with(name, "DenseReluDense.wi_0.weight") ||
      ends_with(name, "DenseReluDense.wi_1.weight"))
    return f * inv_sqrt(d_model);
  if (ends_with(name, "DenseReluDense.wo.weight")) return f * inv_sqrt(static_cast<double>(c.d_ff));
  throw Error("T5 initialisation: no rule for tensor '" + name + "'");
}

std::string without_trailing_slashes(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

}  // namespace

T5EncoderModel init_t5_encoder(const T5Config& config, const T5InitOptions& options) {
  if (!(options.initializer_factor > 0))
    throw Error("T5 initialisation: initializer_factor must be positive, not " +
                std::to_string(options.initializer_factor));
  if (!at::isFloatingType(options.dtype))
    throw Error(std::string("T5 initialisation: dtype ") + c10::toString(options.dtype) + " is not a float type");
  T5EncoderModel model(config);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  at::NoGradGuard no_grad;
  model.visit([&](const std::string& name, at::Tensor& tensor) {
    const double sd = init_std(name, config, options.initializer_factor);
    at::Tensor value = sd < 0 ? at::full(tensor.sizes(), options.initializer_factor, at::kFloat)
                              : at::empty(tensor.sizes(), at::kFloat).normal_(0.0, sd, generator);
    tensor = value.to(options.device, options.dtype).contiguous();
    tensor.set_requires_grad(true);
  });
  return model;
}

std::vector<std::pair<std::string, at::Tensor>> t5_named_parameters(const T5EncoderModel& encoder) {
  // A copy of the model shares its tensors (at::Tensor is a handle): visiting it yields the encoder's own.
  T5EncoderModel view = encoder;
  std::vector<std::pair<std::string, at::Tensor>> out;
  view.visit([&](const std::string& name, at::Tensor& tensor) { out.emplace_back(name, tensor); });
  return out;
}

std::vector<at::Tensor> t5_parameters(const T5EncoderModel& encoder) {
  std::vector<at::Tensor> out;
  for (auto& [name, tensor] : t5_named_parameters(encoder)) out.push_back(tensor);
  return out;
}

void set_t5_requires_grad(const T5EncoderModel& encoder, bool requires_grad) {
  for (auto& [name, tensor] : t5_named_parameters(encoder)) {
    if (tensor.is_meta()) throw Error("T5 encoder: tensor '" + name + "' has no data (the encoder was never loaded)");
    tensor.set_requires_grad(requires_grad);
  }
}

T5EncoderModel clone_t5_encoder(const T5EncoderModel& encoder) {
  const auto source = t5_named_parameters(encoder);
  T5EncoderModel copy(encoder.config());
  size_t i = 0;
  at::NoGradGuard no_grad;
  copy.visit([&](const std::string& name, at::Tensor& tensor) {
    if (i >= source.size() || source[i].first != name)
      throw Error("T5 encoder: cannot copy tensor '" + name + "' (the encoders differ)");
    tensor = source[i++].second.detach().clone();
  });
  return copy;
}

T5InitConfig read_t5_init_config(const std::string& path, int64_t vocab_size_if_absent) {
  const std::string text = read_input_file(path, 1 << 20);
  T5InitConfig out;
  out.config = parse_t5_config(text, path);  // checks the JSON and every T5 key
  const nlohmann::json j = nlohmann::json::parse(text);
  if (!j.contains("vocab_size")) out.config.vocab_size = vocab_size_if_absent;
  if (j.contains("initializer_factor")) {
    if (!j["initializer_factor"].is_number() || !(j["initializer_factor"].get<double>() > 0))
      throw Error(path + ": 'initializer_factor' must be a positive number");
    out.initializer_factor = j["initializer_factor"].get<double>();
  }
  if (out.config.vocab_size < 1) throw Error(path + ": no vocab_size and no tokenizer to take it from");
  return out;
}

std::string t5_config_json(const T5Config& c, double initializer_factor) {
  const nlohmann::json j = {{"architectures", {"T5EncoderModel"}},
                            {"model_type", "t5"},
                            {"vocab_size", c.vocab_size},
                            {"d_model", c.d_model},
                            {"d_kv", c.d_kv},
                            {"d_ff", c.d_ff},
                            {"num_layers", c.num_layers},
                            {"num_decoder_layers", c.num_layers},
                            {"num_heads", c.num_heads},
                            {"relative_attention_num_buckets", c.relative_attention_num_buckets},
                            {"relative_attention_max_distance", c.relative_attention_max_distance},
                            {"feed_forward_proj", c.feed_forward_proj},
                            {"dense_act_fn", c.dense_act_fn()},
                            {"is_gated_act", c.is_gated_act()},
                            {"layer_norm_epsilon", c.layer_norm_epsilon},
                            {"dropout_rate", 0.0},  // trained without dropout
                            {"initializer_factor", initializer_factor},
                            {"pad_token_id", 0},
                            {"eos_token_id", 1},
                            {"decoder_start_token_id", 0},
                            {"is_encoder_decoder", false},
                            {"tie_word_embeddings", true},
                            {"use_cache", false}};
  return j.dump(2) + "\n";
}

void save_t5_folder(const std::string& dir_in, const T5EncoderModel& encoder, const std::string& spiece_model_path,
                    double initializer_factor) {
  const std::string dir = without_trailing_slashes(dir_in);
  const T5Config& config = encoder.config();
  const T5Tokenizer tokenizer = T5Tokenizer::load(spiece_model_path);
  if (tokenizer.vocab_size() > config.vocab_size)
    throw Error(spiece_model_path + ": " + std::to_string(tokenizer.vocab_size()) +
                " token ids (pieces + 100 sentinels), more than the encoder's vocab_size " +
                std::to_string(config.vocab_size));
  const std::string spiece = read_input_file(spiece_model_path, 256ull << 20);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, tensor] : t5_named_parameters(encoder)) {
    if (tensor.is_meta()) throw Error(dir + ": the encoder's tensor '" + name + "' has no data");
    tensors.emplace_back(name, tensor.detach());
  }

  const std::string partial = dir + ".partial";
  std::string error;
  if (!remove_tree(partial, &error)) throw Error(partial + ": cannot remove a leftover folder (" + error + ")");
  std::error_code ec;
  fs::create_directories(partial, ec);
  if (ec) throw Error(partial + ": cannot create the folder (" + ec.message() + ")");
  try {
    write_safetensors(partial + "/model.safetensors", tensors, {{"format", "pt"}});
    const std::string json = t5_config_json(config, initializer_factor);
    AtomicFile config_file(partial + "/config.json");
    config_file.write(json.data(), json.size());
    config_file.commit();
    AtomicFile spiece_file(partial + "/spiece.model");
    spiece_file.write(spiece.data(), spiece.size());
    spiece_file.commit();
  } catch (...) {
    remove_tree(partial);
    throw;
  }
  if (!remove_tree(dir, &error)) throw Error(dir + ": cannot replace the folder (" + error + ")");
  fs::rename(partial, dir, ec);
  if (ec) throw Error(dir + ": cannot rename " + partial + " into place (" + ec.message() + ")");
  sync_parent_folder(dir);
}

}  // namespace lit::text
