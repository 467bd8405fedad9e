// A model config's JSON object read field by field, each value type-checked, for the class-conditional
// (model_config.h) and the PixArt (model/t2i/pixart_config.h) configs: errors are lit::Error
// "<what>: 'depth' must be an integer, got 2.5".
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "model/backbone/model_config.h"  // AttentionType

namespace lit {

class ConfigFields {
 public:
  ConfigFields(const nlohmann::json& object, std::string what) : j_(object), what_(std::move(what)) {}

  Error error(const std::string& message) const { return Error(what_ + ": " + message); }
  // Every key must be there: "missing key 'K'" otherwise.
  void require(std::initializer_list<const char*> keys) const;
  // The key's value into `field` when the key is there (null is a wrong type); the field keeps its value otherwise.
  void read(const char* key, int64_t& field) const;
  void read(const char* key, double& field) const;
  void read(const char* key, bool& field) const;
  void read(const char* key, AttentionType& field) const;  // "softmax" or "linear"

 private:
  const nlohmann::json& value(const char* key) const { return j_.at(key); }
  bool has(const char* key) const { return j_.contains(key); }

  const nlohmann::json& j_;
  std::string what_;
};

}  // namespace lit
