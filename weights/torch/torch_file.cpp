#include "weights/torch/torch_file.h"

#include <c10/util/Exception.h>

#include "common/error.h"

namespace lit {

using Kind = PickleValue::Kind;

std::unique_ptr<TorchFile> TorchFile::open(const std::string& path, CheckpointFormat format) {
  switch (format) {
    case CheckpointFormat::TorchZip:
      return open_torch_zip(path);
    case CheckpointFormat::TorchLegacy:
      return open_torch_legacy(path);
    case CheckpointFormat::Safetensors:
      break;
  }
  throw Error(path + ": not a torch.save file");
}

TorchFile::~TorchFile() = default;

// ---------------------------------------------------------------------------------------------------------
// Choosing the state dict
// ---------------------------------------------------------------------------------------------------------
namespace {

bool all_tensors(const PickleValue& dict) {
  for (size_t i = 0; i < dict.dict_size(); ++i)
    if (!dict.dict_value(i)->is(Kind::Tensor)) return false;
  return true;
}

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& item : items) s += (s.empty() ? "" : ", ") + item;
  return s;
}

}  // namespace

TorchStateDict TorchFile::select_state_dict(const std::string& use_weights) const {
  const PickleValue& top = root();
  if (!top.is(Kind::Dict))
    throw Error(path_ + ": holds " + pickle_kind_name(top.kind) + ", not a state dict or a training checkpoint");
  TorchStateDict out;
  const PickleValue* dict = &top;
  std::string where = path_;
  if (!all_tensors(top)) {
    // A training checkpoint (DiT's train.py: {"model", "ema", "opt", "args"}) or another container of state
    // dicts: take the one asked for.
    for (size_t i = 0; i < top.dict_size(); ++i) out.top_level_keys.push_back(pickle_key_string(*top.dict_key(i)));
    dict = top.dict_find(use_weights);
    if (!dict)
      throw Error(path_ + ": no '" + use_weights +
                  "' weights in this checkpoint (top-level keys: " + join(out.top_level_keys) + ")");
    if (!dict->is(Kind::Dict))
      throw Error(path_ + ": '" + use_weights + "' is " + pickle_kind_name(dict->kind) + ", not a state dict");
    out.weights_key = use_weights;
    where += " ['" + use_weights + "']";
  }
  for (size_t i = 0; i < dict->dict_size(); ++i) {
    const PickleValue* key = dict->dict_key(i);
    const PickleValue* value = dict->dict_value(i);
    if (!key->is(Kind::String))
      throw Error(where + ": a state dict key is " + std::string(pickle_kind_name(key->kind)));
    if (!value->is(Kind::Tensor))
      throw Error(where + ": '" + key->text + "' is " + pickle_kind_name(value->kind) + ", not a tensor");
    out.tensors.emplace_back(key->text, value);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Tensors from storages
// ---------------------------------------------------------------------------------------------------------
namespace {

// The element count of a storage of `bytes` bytes, and a check that the tensor's view stays inside it (the
// pickle was checked against the count it claims; this checks against the data actually present).
int64_t checked_storage_numel(const std::string& path, const PickleValue& record, const std::string& name,
                              uint64_t bytes) {
  const PickleValue& storage = *record.tensor_storage();
  const uint64_t element = c10::elementSize(storage.dtype);
  if (bytes % element != 0)
    throw Error(path + ": storage '" + storage.text + "' of tensor '" + name + "' is " + std::to_string(bytes) +
                " bytes, not a whole number of " + c10::toString(storage.dtype) + " elements");
  const uint64_t numel = bytes / element;
  // torch.save writes each storage at exactly the size its pickle declares; a record of another size is
  // corrupt or hostile (a 4-element storage whose zip entry inflates to gigabytes), refused before any
  // buffer is sized from it.
  if (numel != static_cast<uint64_t>(storage.integer))
    throw Error(path + ": storage '" + storage.text + "' of tensor '" + name + "' holds " + std::to_string(bytes) +
                " bytes in the file, its pickle declares " + std::to_string(storage.integer) + " x " +
                std::to_string(element) + " bytes");
  int64_t last = record.integer;  // sizes and strides were checked for overflow by the unpickler
  for (size_t d = 0; d < record.sizes.size(); ++d) {
    if (record.sizes[d] == 0) return static_cast<int64_t>(numel);
    last += (record.sizes[d] - 1) * record.strides[d];
  }
  if (static_cast<uint64_t>(last) >= numel)
    throw Error(path + ": tensor '" + name + "' reaches element " + std::to_string(last) + " of storage '" +
                storage.text + "', which holds " + std::to_string(numel));
  return static_cast<int64_t>(numel);
}

}  // namespace

void TorchFile::check_tensor(const PickleValue& record, const std::string& name) {
  checked_storage_numel(path_, record, name, storage_bytes(record.tensor_storage()->text, name));
}

at::Tensor TorchFile::tensor(const PickleValue& record, const std::string& name) {
  const PickleValue& storage_ref = *record.tensor_storage();
  const uint64_t bytes = storage_bytes(storage_ref.text, name);
  const int64_t numel = checked_storage_numel(path_, record, name, bytes);
  const auto options = at::TensorOptions().dtype(storage_ref.dtype);
  for (int64_t size : record.sizes)
    if (size == 0) return at::empty(record.sizes, options);
  const auto cache_key = std::make_pair(storage_ref.text, storage_ref.dtype);
  auto it = storages_.find(cache_key);
  if (it == storages_.end()) {
    at::Tensor storage;
    try {
      storage = at::empty({numel}, options);
    } catch (const c10::Error&) {
      throw Error(path_ + ": cannot allocate " + std::to_string(bytes) + " bytes for tensor '" + name + "'");
    }
    if (bytes > 0) read_storage(storage_ref.text, storage.data_ptr(), bytes);
    it = storages_.emplace(cache_key, storage).first;
  }
  const at::Tensor& storage = it->second;
  const at::Tensor view = storage.as_strided(record.sizes, record.strides, record.integer);
  if (record.integer == 0 && view.numel() == numel && view.is_contiguous()) return view;
  // A part of a storage, or strided: an independent contiguous copy, so the tensor neither aliases another nor
  // keeps a larger storage alive.
  return view.clone(at::MemoryFormat::Contiguous);
}

}  // namespace lit
