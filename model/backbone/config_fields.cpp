#include "model/backbone/config_fields.h"

namespace lit {

void ConfigFields::require(std::initializer_list<const char*> keys) const {
  for (const char* key : keys)
    if (!j_.contains(key)) throw error(std::string("missing key '") + key + "'");
}

void ConfigFields::read(const char* key, int64_t& field) const {
  if (!has(key)) return;
  const nlohmann::json& v = value(key);
  if (!v.is_number_integer()) throw error(std::string("'") + key + "' must be an integer, got " + v.dump());
  field = v.get<int64_t>();
}

void ConfigFields::read(const char* key, double& field) const {
  if (!has(key)) return;
  const nlohmann::json& v = value(key);
  if (!v.is_number()) throw error(std::string("'") + key + "' must be a number, got " + v.dump());
  field = v.get<double>();
}

void ConfigFields::read(const char* key, bool& field) const {
  if (!has(key)) return;
  const nlohmann::json& v = value(key);
  if (!v.is_boolean()) throw error(std::string("'") + key + "' must be true or false, got " + v.dump());
  field = v.get<bool>();
}

void ConfigFields::read(const char* key, AttentionType& field) const {
  if (!has(key)) return;
  const nlohmann::json& v = value(key);
  if (v == "softmax")
    field = AttentionType::Softmax;
  else if (v == "linear")
    field = AttentionType::Linear;
  else
    throw error(std::string("'") + key + "' must be \"softmax\" or \"linear\", got " + v.dump());
}

}  // namespace lit
