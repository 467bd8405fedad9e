#include "weights/generation_params.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace lit {
namespace {

constexpr const char* kNegativePrefix = "Negative prompt:";

bool is_word(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || std::isalnum(u) || c == '_';  // bytes of non-ASCII letters count as word characters
}
bool is_key_char(char c) {
  return is_word(c) || c == ' ' || c == '-' || c == '/';
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

// The web UI's key grammar: a word character, then at least one of word characters, spaces, '-' and '/'.
bool valid_key(const std::string& key) {
  if (key.size() < 2 || !is_word(key.front()) || key.back() == ' ') return false;
  for (char c : key)
    if (!is_key_char(c)) return false;
  return true;
}

bool needs_quotes(const std::string& v) {
  if (v.empty()) return false;
  if (v.find_first_of(",:\"\n\r") != std::string::npos) return true;
  return is_space(v.front()) || is_space(v.back());
}

// Parses a whole line as `Key: value, Key: value, ...`; false (and `fields` unspecified) when it is not one.
bool parse_fields(const std::string& line, std::vector<std::pair<std::string, std::string>>& fields) {
  fields.clear();
  size_t pos = 0;
  const size_t n = line.size();
  while (true) {
    while (pos < n && is_space(line[pos])) ++pos;
    if (pos == n) return !fields.empty();
    // Key.
    const size_t key_begin = pos;
    if (!is_word(line[pos])) return false;
    while (pos < n && is_key_char(line[pos])) ++pos;
    if (pos == n || line[pos] != ':' || pos - key_begin < 2) return false;
    std::string key = line.substr(key_begin, pos - key_begin);
    while (!key.empty() && key.back() == ' ') key.pop_back();
    ++pos;
    while (pos < n && is_space(line[pos])) ++pos;
    // Value: a JSON string, or everything up to the next comma.
    std::string value;
    if (pos < n && line[pos] == '"') {
      size_t end = pos + 1;
      while (end < n && line[end] != '"') end += line[end] == '\\' ? 2 : 1;
      if (end >= n) return false;
      try {
        value = nlohmann::json::parse(line.substr(pos, end + 1 - pos)).get<std::string>();
      } catch (const nlohmann::json::exception&) {
        return false;
      }
      pos = end + 1;
      while (pos < n && is_space(line[pos])) ++pos;
      if (pos < n && line[pos] != ',') return false;
    } else {
      const size_t comma = line.find(',', pos);
      value = line.substr(pos, (comma == std::string::npos ? n : comma) - pos);
      pos = comma == std::string::npos ? n : comma;
      if (pos == n)
        while (!value.empty() && is_space(value.back())) value.pop_back();
    }
    fields.emplace_back(key, value);
    if (pos == n) return true;
    ++pos;  // the comma
  }
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  while (true) {
    const size_t end = text.find('\n', begin);
    std::string line = text.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
    if (end == std::string::npos) return lines;
    begin = end + 1;
  }
}

std::string join_lines(const std::vector<std::string>& lines, size_t begin, size_t end) {
  std::string s;
  for (size_t i = begin; i < end; ++i) s += (i > begin ? "\n" : "") + lines[i];
  return s;
}

}  // namespace

std::optional<std::string> GenerationParams::get(const std::string& key) const {
  for (const auto& [k, v] : fields)
    if (k == key) return v;
  return std::nullopt;
}

void GenerationParams::set(const std::string& key, const std::string& value) {
  for (auto& [k, v] : fields) {
    if (k == key) {
      v = value;
      return;
    }
  }
  fields.emplace_back(key, value);
}

std::string format_generation_params(const GenerationParams& params) {
  std::string line;
  for (const auto& [key, value] : params.fields) {
    if (!valid_key(key))
      throw Error("generation parameters: key '" + key + "' cannot be written (letters, digits, spaces, '-', '/')");
    std::string text = value;
    if (needs_quotes(value)) {
      try {
        text = nlohmann::json(value).dump(-1, ' ', false);
      } catch (const nlohmann::json::exception&) {
        throw Error("generation parameters: the value of '" + key + "' is not valid UTF-8");
      }
    }
    line += (line.empty() ? "" : ", ") + key + ": " + text;
  }
  // Always a line for the fields, even an empty one, so that parse never mistakes the prompt's last line
  // for fields; the web UI writes the same text whenever there are fields and a prompt.
  std::string out = params.prompt;
  if (!params.negative_prompt.empty()) out += std::string("\n") + kNegativePrefix + " " + params.negative_prompt;
  return out + "\n" + line;
}

GenerationParams parse_generation_params(const std::string& text) {
  GenerationParams params;
  std::vector<std::string> lines = split_lines(text);
  std::vector<std::pair<std::string, std::string>> fields;
  if (lines.size() >= 2 && lines.back().empty()) {
    lines.pop_back();
  } else if (parse_fields(lines.back(), fields) && (lines.size() >= 2 || fields.size() >= 3)) {
    params.fields = std::move(fields);
    lines.pop_back();
  }
  size_t negative = lines.size();
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind(kNegativePrefix, 0) == 0) {
      negative = i;
      break;
    }
  }
  params.prompt = join_lines(lines, 0, negative);
  if (negative < lines.size()) {
    std::string first = lines[negative].substr(std::string(kNegativePrefix).size());
    if (!first.empty() && first.front() == ' ') first.erase(0, 1);
    lines[negative] = first;
    params.negative_prompt = join_lines(lines, negative, lines.size());
  }
  return params;
}

std::optional<std::string> find_parameters_text(const std::vector<std::pair<std::string, std::string>>& chunks) {
  for (const auto& [key, text] : chunks)
    if (key == kParametersKeyword) return text;
  return std::nullopt;
}

}  // namespace lit
