// The built-in models, trained by this project and shipped in the repository, so that a fresh machine without
// network generates images out of the box. Front ends use them when no --model is given:
//   - the class model: a Fashion-MNIST LiT (tools/builtin-model.sh), model/builtin/lit-fmnist.safetensors;
//   - the text model (for a prompt): a LiT-T2I drawing captioned Fashion-MNIST canvases (tools/builtin-t2i.sh),
//     model/builtin/t2i/lit-t2i.safetensors with its own T5 folder t2i/t5/ beside it; trained with caption
//     dropout to its y_embedding, so it is sampled with its learned null caption.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace lit {

// Where the built-in model is looked for, first found wins: $LIT_BUILTIN_MODEL, <dir of the program>/../share/
// lit/lit-fmnist.safetensors (an installed tree), the source tree's model/builtin/lit-fmnist.safetensors.
std::vector<std::string> builtin_model_candidates();

// The first candidate that exists, or nothing.
std::optional<std::string> find_builtin_model();

// find_builtin_model(), or lit::Error listing where it looked (and that --model chooses another model).
std::string builtin_model_path();

// The built-in text model and its T5 folder (the "t5" folder beside the checkpoint).
struct BuiltinTextModel {
  std::string model;         // the LiT-T2I checkpoint
  std::string text_encoder;  // its T5 folder (Hugging Face layout + spiece.model)
};

// Where the built-in text model is looked for, as the class model: $LIT_BUILTIN_TEXT_MODEL, <dir of the program>/
// ../share/lit/t2i/lit-t2i.safetensors, the source tree's model/builtin/t2i/lit-t2i.safetensors.
std::vector<std::string> builtin_text_model_candidates();

// The first candidate that exists, with its T5 folder, or nothing.
std::optional<BuiltinTextModel> find_builtin_text_model();

// find_builtin_text_model(), or lit::Error listing where it looked (and that --model chooses another model);
// also when the checkpoint is there but its T5 folder is not.
BuiltinTextModel builtin_text_model();

// Whether `path` is the built-in text model's checkpoint (the same file as the one found).
bool is_builtin_text_model(const std::string& path);

// A prompt the built-in text model knows how to draw: front ends show it first.
inline constexpr const char* kBuiltinTextExamplePrompt = "a red sneaker on the left";

// The ten Fashion-MNIST class names in label order ("T-shirt/top", "Trouser", ..., "Ankle boot").
const std::vector<std::string>& fashion_mnist_class_names();

}  // namespace lit
