// Class names of class-conditional models, and reading the classes a user asks for.
// A model's names come from its checkpoint's "class_names" metadata (a JSON array, written by the trainer),
// else from the ImageNet list for 1000-class models (compiled in, model/data/imagenet_classes.txt), else
// they are "class 0", "class 1", ... Labels equal to num_classes mean the null class (unconditional).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lit {

// The 1000 ImageNet-1k class names in class-id order ("tench", "goldfish", ..., "toilet tissue").
const std::vector<std::string>& imagenet_class_names();

struct ClassNames {
  std::vector<std::string> names;  // one per class id
  std::string source;              // "checkpoint metadata", "ImageNet-1k", "numbered"
};

// The names for a model with num_classes classes. Throws lit::Error when the metadata's list is malformed
// or has another length than num_classes.
ClassNames class_names_for_model(int64_t num_classes, const std::map<std::string, std::string>& metadata);

// One class as a user writes it: an id ("207") or a name ("golden retriever", "Golden_Retriever": case,
// spaces and underscores do not matter). Throws lit::Error naming the token: an id out of range, an unknown
// name (with the closest names), or a name shared by several classes (with their ids).
int64_t parse_class(const std::string& token, const ClassNames& classes);

// The label a generated image is described by: "207 (golden retriever)", or "unconditional" for the null class.
std::string describe_class(int64_t label, const ClassNames& classes);

}  // namespace lit
