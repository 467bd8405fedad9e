// Hand-built torch.save pickles and zip archives, for tests of what the readers refuse: the bytes are
// written opcode by opcode here, so a test says exactly which structure it feeds in.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "weights/zip_archive.h"

namespace lit::test {

struct PickleBytes {
  std::string s;

  PickleBytes& op(char c) {
    s += c;
    return *this;
  }
  PickleBytes& raw(const std::string& bytes) {
    s += bytes;
    return *this;
  }
  PickleBytes& proto(int version) { return op('\x80').op(static_cast<char>(version)); }
  PickleBytes& mark() { return op('('); }
  PickleBytes& stop() { return op('.'); }
  PickleBytes& str(const std::string& text) {  // BINUNICODE
    op('X');
    le(text.size(), 4);
    s += text;
    return *this;
  }
  PickleBytes& int1(uint8_t v) { return op('K').op(static_cast<char>(v)); }
  PickleBytes& int4(int32_t v) {
    op('J');
    le(static_cast<uint32_t>(v), 4);
    return *this;
  }
  PickleBytes& global(const std::string& module, const std::string& name) {
    return op('c').raw(module + "\n" + name + "\n");
  }
  PickleBytes& le(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
    return *this;
  }
  PickleBytes& int_tuple(const std::vector<int>& values) {
    mark();
    for (int v : values) int4(v);
    return op('t');
  }
  // _rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, sizes, strides, False, OrderedDict())
  PickleBytes& tensor(const std::string& key, int numel, int offset, const std::vector<int>& sizes,
                      const std::vector<int>& strides, const std::string& storage_type = "FloatStorage") {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    mark().str("storage").global("torch", storage_type).str(key).str("cpu").int4(numel).op('t').op('Q');
    int4(offset).int_tuple(sizes).int_tuple(strides).op('\x89');
    global("collections", "OrderedDict").op(')').op('R');
    return op('t').op('R');
  }
};

// A pickle of {name: tensor} as torch.save writes a state dict (an OrderedDict filled by SETITEMS).
inline std::string state_dict_pickle(const std::string& name, const std::string& key, int numel,
                                     const std::vector<int>& sizes, const std::vector<int>& strides, int offset = 0) {
  PickleBytes p;
  p.proto(2).global("collections", "OrderedDict").op(')').op('R').mark().str(name);
  p.tensor(key, numel, offset, sizes, strides).op('u').stop();
  return p.s;
}

// A torch.save-style zip: "<prefix>/data.pkl" plus "<prefix>/data/<key>" per storage.
inline void write_torch_zip(const std::string& path, const std::string& prefix, const std::string& pickle,
                            const std::vector<std::pair<std::string, std::string>>& storages, bool with_pickle = true) {
  ZipWriter zip(path);
  if (with_pickle) zip.add(prefix + "/data.pkl", {{pickle.data(), pickle.size()}}, false);
  for (const auto& [key, bytes] : storages) zip.add(prefix + "/data/" + key, {{bytes.data(), bytes.size()}}, false);
  zip.commit();
}

}  // namespace lit::test
