#include "model/backbone/class_labels.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"

namespace lit {
namespace data {
extern const char* const kImageNetClassNames;
}

namespace {

// Lower case, underscores and runs of spaces as one space, trimmed.
std::string normalise(const std::string& s) {
  std::string out;
  for (char c : s) {
    const char ch = (c == '_' || c == '\t') ? ' ' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ch == ' ' && (out.empty() || out.back() == ' ')) continue;
    out.push_back(ch);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

bool parse_id(const std::string& token, int64_t* id) {
  if (token.empty() || token.size() > 18) return false;
  for (char c : token)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  *id = std::stoll(token);
  return true;
}

}  // namespace

const std::vector<std::string>& imagenet_class_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    std::istringstream in(data::kImageNetClassNames);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) out.push_back(line);
    return out;
  }();
  return names;
}

ClassNames class_names_for_model(int64_t num_classes, const std::map<std::string, std::string>& metadata) {
  ClassNames out;
  auto it = metadata.find("class_names");
  if (it != metadata.end()) {
    nlohmann::json list;
    try {
      list = nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception&) {
      throw Error("checkpoint metadata 'class_names' is not valid JSON");
    }
    if (!list.is_array() || static_cast<int64_t>(list.size()) != num_classes)
      throw Error("checkpoint metadata 'class_names' must be a list of " + std::to_string(num_classes) + " names");
    for (const auto& name : list) {
      if (!name.is_string()) throw Error("checkpoint metadata 'class_names' holds a non-string entry");
      out.names.push_back(name.get<std::string>());
    }
    out.source = "checkpoint metadata";
    return out;
  }
  if (num_classes == static_cast<int64_t>(imagenet_class_names().size())) {
    out.names = imagenet_class_names();
    out.source = "ImageNet-1k";
    return out;
  }
  for (int64_t i = 0; i < num_classes; ++i) out.names.push_back("class " + std::to_string(i));
  out.source = "numbered";
  return out;
}

int64_t parse_class(const std::string& token, const ClassNames& classes) {
  const auto n = static_cast<int64_t>(classes.names.size());
  int64_t id = 0;
  if (parse_id(token, &id)) {
    if (id >= n)
      throw Error("class id " + token + " is out of range: the model has " + std::to_string(n) + " classes (0.." +
                  std::to_string(n - 1) + ")");
    return id;
  }
  if (!token.empty() && token[0] == '-' && parse_id(token.substr(1), &id))
    throw Error("class id " + token + " is out of range: ids start at 0");
  const std::string key = normalise(token);
  std::vector<int64_t> matches;
  for (int64_t i = 0; i < n; ++i)
    if (normalise(classes.names[static_cast<size_t>(i)]) == key) matches.push_back(i);
  if (matches.size() == 1) return matches[0];
  if (matches.size() > 1) {
    std::string ids;
    for (auto m : matches) ids += (ids.empty() ? "" : ", ") + std::to_string(m);
    throw Error("class name '" + token + "' is ambiguous: it names classes " + ids + "; give the id instead");
  }
  // Unknown: suggest the closest names.
  std::vector<std::pair<size_t, int64_t>> scored;
  for (int64_t i = 0; i < n; ++i)
    scored.emplace_back(edit_distance(key, normalise(classes.names[static_cast<size_t>(i)])), i);
  std::sort(scored.begin(), scored.end());
  std::string hint;
  for (size_t k = 0; k < std::min<size_t>(3, scored.size()); ++k)
    hint += (k ? ", " : "") + std::string("'") + classes.names[static_cast<size_t>(scored[k].second)] + "' (" +
            std::to_string(scored[k].second) + ")";
  throw Error("unknown class name '" + token + "'" + (hint.empty() ? "" : "; closest: " + hint));
}

std::string describe_class(int64_t label, const ClassNames& classes) {
  if (label < 0 || label >= static_cast<int64_t>(classes.names.size())) return "unconditional";
  return std::to_string(label) + " (" + classes.names[static_cast<size_t>(label)] + ")";
}

}  // namespace lit
