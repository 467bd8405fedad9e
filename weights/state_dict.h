// StateDict: named tensors in a stable order (the order of the file or of the module that produced them),
// with lookup by name. What checkpoint readers return and model loaders consume.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"

namespace lit {

class StateDict {
 public:
  using Item = std::pair<std::string, at::Tensor>;

  // Adds a tensor; a duplicate name throws lit::Error.
  void insert(const std::string& name, at::Tensor tensor) {
    if (index_.count(name)) throw Error("state dict: duplicate tensor name '" + name + "'");
    index_[name] = items_.size();
    items_.emplace_back(name, std::move(tensor));
  }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // Throws lit::Error naming the missing tensor.
  const at::Tensor& at(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) throw Error("state dict: no tensor named '" + name + "'");
    return items_[it->second].second;
  }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  const std::vector<Item>& items() const { return items_; }
  std::vector<Item>::const_iterator begin() const { return items_.begin(); }
  std::vector<Item>::const_iterator end() const { return items_.end(); }

 private:
  std::vector<Item> items_;
  std::map<std::string, size_t> index_;
};

}  // namespace lit
