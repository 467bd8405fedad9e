// The pickles inside torch.save files, read by a restricted interpreter rather than a pickle VM.
//
// A checkpoint's pickle is a program: opcodes that build Python objects and may call any importable function
// (which is how a malicious .pt runs code in Python). This reader executes nothing. It knows the opcodes
// torch.save emits (protocols 2-4), builds plain values (None, bools, ints, floats, strings, tuples, lists,
// dicts) and accepts only the globals a checkpoint needs:
//   collections.OrderedDict                               -> an (ordered) dict
//   torch._utils._rebuild_tensor(_v2), _rebuild_parameter -> a tensor record (storage, offset, sizes, strides)
//   torch.<Type>Storage, torch.UntypedStorage             -> the dtype of a storage reference (persistent id)
//   argparse.Namespace                                    -> an opaque object (DiT's "args"; never read)
// Any other global is refused with an error naming it. Tensor data is not touched here: a tensor record names
// its storage by key, and the file reader (torch_file.h) loads only the storages that are asked for.
// Every read is bounds-checked and the interpreter's memory is capped (PickleLimits), so no input can crash
// it or make it allocate without bound. Values live in an arena owned by the PickleDocument, so cycles or
// deep nesting built by a hostile pickle cannot leak or overflow the stack on destruction.
#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace lit {

struct PickleValue {
  enum class Kind { None, Bool, Int, Float, String, Bytes, Tuple, List, Dict, Global, Object, Storage, Tensor };
  Kind kind = Kind::None;
  int64_t integer = 0;  // Bool, Int; Storage: its element count; Tensor: its storage offset (in elements)
  double real = 0;      // Float
  std::string text;     // String, Bytes; Global: "module.name"; Object: its class; Storage: its key
  // Tuple, List: elements. Dict: key0, value0, key1, value1, ... in insertion order. Tensor: {its Storage}.
  std::vector<const PickleValue*> items;
  at::ScalarType dtype = at::kByte;     // Storage
  std::vector<int64_t> sizes, strides;  // Tensor

  bool is(Kind k) const { return kind == k; }
  const PickleValue* tensor_storage() const { return items.empty() ? nullptr : items[0]; }
  size_t dict_size() const { return items.size() / 2; }
  const PickleValue* dict_key(size_t i) const { return items[2 * i]; }
  const PickleValue* dict_value(size_t i) const { return items[2 * i + 1]; }
  // The value of a string key (the last one, as a Python dict keeps); nullptr if absent.
  const PickleValue* dict_find(const std::string& key) const;
};

// "a dict", "an int", "None", ...: for error messages.
const char* pickle_kind_name(PickleValue::Kind kind);
// A short human-readable rendering of a dict key (strings as is, ints in decimal, others by kind).
std::string pickle_key_string(const PickleValue& key);

struct PickleLimits {
  uint64_t max_values = uint64_t(1) << 22;      // objects built
  uint64_t max_references = uint64_t(1) << 24;  // container slots, all containers together
  uint64_t max_memo = uint64_t(1) << 22;        // memo entries
  uint64_t max_stack = uint64_t(1) << 20;       // value stack depth
  uint64_t max_marks = uint64_t(1) << 16;       // open MARKs
  uint64_t max_string = uint64_t(1) << 26;      // bytes in one string
  int max_tensor_dims = 64;
};

class PickleDocument {
 public:
  PickleDocument();
  PickleDocument(PickleDocument&&) noexcept;
  PickleDocument& operator=(PickleDocument&&) noexcept;
  ~PickleDocument();

  const PickleValue* root() const { return root_; }
  size_t bytes_used() const { return bytes_used_; }  // where the pickle's STOP ended
  // Every storage reference, in the order of the pickle (several may name the same key).
  const std::vector<const PickleValue*>& storages() const { return storages_; }

 private:
  friend class Unpickler;
  std::unique_ptr<std::deque<PickleValue>> values_;
  const PickleValue* root_ = nullptr;
  size_t bytes_used_ = 0;
  std::vector<const PickleValue*> storages_;
};

// Interprets one pickle from data[0, size) up to its STOP. `where` prefixes every error message (e.g.
// "model.pt: data.pkl"). Throws lit::Error for anything malformed, unsupported or over the limits.
PickleDocument parse_torch_pickle(const unsigned char* data, size_t size, const std::string& where,
                                  const PickleLimits& limits = {});

}  // namespace lit
