#include "pipeline/parameters.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "common/error.h"
#include "common/format.h"
#include "pipeline/session.h"
#include "sampler/sampler.h"

namespace lit {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Whole-string number parsing: nothing when the text is not exactly a number.
std::optional<int64_t> parse_int(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno || *end) return std::nullopt;
  return v;
}
std::optional<uint64_t> parse_uint(const std::string& text) {
  if (text.empty() || text[0] == '-') return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (errno || *end) return std::nullopt;
  return v;
}
std::optional<double> parse_double(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (*end || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace

std::string record_file_name(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path.empty() ? "" : std::filesystem::path(path).lexically_normal().filename().string();
}

namespace {

// A text-to-image image: the prompt and negative prompt as the web UI writes them, then the settings.
GenerationParams text_image_params(const GenerationRequest& r, const ModelInfo& model, int64_t index) {
  GenerationParams p;
  p.prompt = r.conditioning.prompt_of(index);
  p.negative_prompt = r.conditioning.negative_prompt;
  const int64_t side = model.image_size;
  p.set("Steps", std::to_string(r.steps));
  p.set("Sampler", r.sampler);
  p.set("CFG scale", format_number(r.cfg_scale));
  p.set("Seed", std::to_string(r.seed + static_cast<uint64_t>(index)));
  p.set("Size", std::to_string(r.width ? r.width : side) + "x" + std::to_string(r.height ? r.height : side));
  p.set("Model", record_file_name(model.path));
  if (!model.vae_path.empty()) p.set("VAE", record_file_name(model.vae_path));
  p.set("Text encoder", record_file_name(model.text_encoder_path));
  p.set("Guidance convention", guidance_convention_name(r.guidance_convention));
  p.set("Null caption", r.learned_null_caption ? "learned" : "t5");
  if (r.max_length) p.set("Max length", std::to_string(r.max_length));
  if (r.sampler != "dpm++2m") p.set("Guidance channels", r.cfg_all_channels ? "all" : "dit");
  if (r.sampler == "ddim") p.set("Eta", format_number(r.eta));
  if (r.clamp_x0 != ClampX0::Auto) p.set("Clamp x0", clamp_x0_name(r.clamp_x0));
  p.set("Dtype", r.dtype);
  p.set("Architecture", model.architecture);
  p.set("Run seed", std::to_string(r.seed));
  p.set("Image index", std::to_string(index));
  return p;
}

}  // namespace

GenerationParams image_params(const GenerationRequest& r, const ModelInfo& model, int64_t label, int64_t index) {
  if (model.text_conditional) return text_image_params(r, model, index);
  GenerationParams p;
  const bool unconditional = label == model.num_classes;
  p.prompt = unconditional ? "unconditional" : model.classes.names.at(static_cast<size_t>(label));
  p.set("Steps", std::to_string(r.steps));
  p.set("Sampler", r.sampler);
  p.set("CFG scale", unconditional ? "1" : format_number(r.cfg_scale));
  p.set("Seed", std::to_string(r.seed + static_cast<uint64_t>(index)));
  p.set("Size", std::to_string(model.image_size) + "x" + std::to_string(model.image_size));
  p.set("Model", record_file_name(model.path));
  p.set("Class", unconditional ? "unconditional" : std::to_string(label));
  if (!model.vae_path.empty()) p.set("VAE", record_file_name(model.vae_path));
  p.set("Guidance channels", r.cfg_all_channels ? "all" : "dit");
  if (r.sampler == "ddim") p.set("Eta", format_number(r.eta));
  if (r.clamp_x0 != ClampX0::Auto) p.set("Clamp x0", clamp_x0_name(r.clamp_x0));
  p.set("Dtype", r.dtype);
  p.set("Architecture", model.architecture);
  p.set("Run seed", std::to_string(r.seed));
  p.set("Image index", std::to_string(index));
  return p;
}

RestoredRequest request_from_params(const GenerationParams& params, const GenerationRequest& base,
                                    const ModelInfo* model) {
  if (params.fields.empty() && params.prompt.empty()) throw Error("the image carries no generation parameters");
  RestoredRequest out;
  GenerationRequest& r = out.request;
  r = base;
  auto note = [&](const std::string& line) { out.notes.push_back(line); };

  if (auto v = params.get("Steps")) {
    const auto n = parse_int(*v);
    if (n && *n >= 1 && *n <= 1000)
      r.steps = *n;
    else
      note("Steps '" + *v + "' is not a step count, kept " + std::to_string(r.steps));
  }
  if (auto v = params.get("Sampler")) {
    if (auto name = canonical_sampler_name(*v))
      r.sampler = *name;
    else
      note("sampler '" + *v + "' is not one of ddpm, ddim, dpm++2m; kept " + r.sampler);
  }
  if (auto v = params.get("CFG scale")) {
    const auto x = parse_double(*v);
    if (x && *x >= 0)
      r.cfg_scale = *x;
    else
      note("CFG scale '" + *v + "' is not a number, kept " + format_number(r.cfg_scale));
  }
  if (auto v = params.get("Seed")) {
    if (auto seed = parse_uint(*v))
      r.seed = *seed;
    else
      note("Seed '" + *v + "' is not a seed");
  }
  if (auto v = params.get("Guidance channels")) {
    if (*v == "all" || *v == "dit")
      r.cfg_all_channels = *v == "all";
    else
      note("Guidance channels '" + *v + "' is neither dit nor all");
  }
  if (auto v = params.get("Eta")) {
    const auto x = parse_double(*v);
    if (x && *x >= 0) r.eta = *x;
  }
  r.clamp_x0 = ClampX0::Auto;
  if (auto v = params.get("Clamp x0")) {
    if (*v == "on" || *v == "off")
      r.clamp_x0 = *v == "on" ? ClampX0::On : ClampX0::Off;
    else
      note("Clamp x0 '" + *v + "' is neither on nor off");
  }
  if (auto v = params.get("Dtype")) {
    if (auto d = dtype_from_name(*v))
      r.dtype = dtype_name(*d);
    else
      note("precision '" + *v + "' is not fp32, bf16 or fp16");
  }

  // A text-to-image record (a loaded text model, or a record naming a text encoder): the prompt itself.
  const std::optional<std::string> class_field = params.get("Class");
  const bool text_record = !class_field && params.get("Text encoder").has_value();
  if ((model && model->text_conditional) || (!model && text_record)) {
    if (class_field) note("the image was made by a class-conditional model (Class: " + *class_field + ")");
    r.conditioning = Conditioning{};
    r.conditioning.kind = Conditioning::Kind::Prompt;
    r.conditioning.prompt = params.prompt;
    r.conditioning.negative_prompt = params.negative_prompt;
    if (auto v = params.get("Guidance convention")) {
      try {
        r.guidance_convention = parse_guidance_convention(*v);
      } catch (const Error&) {
        note("Guidance convention '" + *v + "' is neither official nor diffusers");
      }
    }
    if (auto v = params.get("Null caption")) {
      if (*v == "learned" || *v == "t5")
        r.learned_null_caption = *v == "learned";
      else
        note("Null caption '" + *v + "' is neither t5 nor learned");
    }
    r.max_length = 0;
    if (auto v = params.get("Max length")) {
      const auto n = parse_int(*v);
      if (n && *n >= 1 && *n <= 4096)
        r.max_length = *n;
      else
        note("Max length '" + *v + "' is not a token count");
    }
    // Size "WxH": the model's own size reads back as 0 (the default).
    r.width = r.height = 0;
    if (auto v = params.get("Size")) {
      const size_t x = v->find('x');
      const auto w = x == std::string::npos ? std::nullopt : parse_int(v->substr(0, x));
      const auto h = x == std::string::npos ? std::nullopt : parse_int(v->substr(x + 1));
      if (w && h && *w > 0 && *h > 0) {
        const int64_t side = model ? model->image_size : 0;
        if (*w != side || *h != side) {
          r.width = *w;
          r.height = *h;
        }
      } else {
        note("Size '" + *v + "' is not WIDTHxHEIGHT");
      }
    }
    if (model) {
      if (auto v = params.get("Model"); v && *v != record_file_name(model->path))
        note("made with model " + *v + "; the loaded model is " + record_file_name(model->path));
      if (auto v = params.get("Text encoder"); v && *v != record_file_name(model->text_encoder_path))
        note("made with text encoder " + *v + "; loaded: '" + record_file_name(model->text_encoder_path) + "'");
    }
    return out;
  }

  // The class: our "Class" field, else the prompt as a class name or id.
  const std::string cls = class_field ? *class_field : params.prompt;
  if (lower(cls) == "unconditional") {
    r.conditioning = Conditioning{};
  } else if (!cls.empty()) {
    const auto id = parse_int(cls);
    if (model && model->class_conditional) {
      try {
        const int64_t k = id ? *id : parse_class(cls, model->classes);
        if (k < 0 || k >= model->num_classes)
          throw Error("class " + cls + " is not one of the model's " + std::to_string(model->num_classes));
        r.conditioning = Conditioning{};
        r.conditioning.kind = Conditioning::Kind::Classes;
        r.conditioning.classes = {std::to_string(k)};
      } catch (const Error& e) {
        r.conditioning = base.conditioning;
        note(std::string("class: ") + e.what());
      }
    } else if (id && *id >= 0) {
      r.conditioning = Conditioning{};
      r.conditioning.kind = Conditioning::Kind::Classes;
      r.conditioning.classes = {std::to_string(*id)};
    } else {
      note("class '" + cls + "' cannot be read without a class-conditional model");
    }
  }

  if (model) {
    const std::string size = std::to_string(model->image_size) + "x" + std::to_string(model->image_size);
    if (auto v = params.get("Size"); v && *v != size) note("made at " + *v + ", the loaded model makes " + size);
    if (auto v = params.get("Model"); v && *v != record_file_name(model->path))
      note("made with model " + *v + "; the loaded model is " + record_file_name(model->path));
    const auto vae = params.get("VAE");
    if (vae.value_or("") != record_file_name(model->vae_path))
      note("made with VAE '" + vae.value_or("none") + "'; loaded: '" +
           (model->vae_path.empty() ? "none" : record_file_name(model->vae_path)) + "'");
  }
  return out;
}

}  // namespace lit
