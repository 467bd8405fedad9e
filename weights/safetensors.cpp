#include "weights/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/input_file.h"

namespace lit {
namespace {

// The reference implementation refuses headers above 100 MB; so do we.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr int kMaxHeaderDepth = 4;
constexpr uint64_t kMaxHeaderValues = uint64_t(8) << 20;  // about 600,000 tensors

const std::vector<std::pair<std::string, at::ScalarType>>& dtype_table() {
  static const std::vector<std::pair<std::string, at::ScalarType>> table = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"I64", at::kLong},
      {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},  {"U8", at::kByte},       {"BOOL", at::kBool},
  };
  return table;
}

uint64_t read_le64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

std::string safetensors_dtype_name(at::ScalarType type) {
  for (const auto& [name, t] : dtype_table())
    if (t == type) return name;
  throw Error(std::string("safetensors: unsupported dtype ") + c10::toString(type));
}

at::ScalarType safetensors_scalar_type(const std::string& dtype) {
  for (const auto& [name, t] : dtype_table())
    if (name == dtype) return t;
  throw Error("safetensors: unsupported dtype '" + dtype + "'");
}

struct SafetensorsFile::Mapping {
  void* data = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (data && size) ::munmap(data, size);
  }
};

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto fail = [&](const std::string& what) -> Error { return Error(path + ": " + what); };
  InputFile input(path);  // regular files only: a FIFO or a device is refused here, before any read
  const int fd = input.release();
  SafetensorsFile file;
  file.path_ = path;
  file.mapping_ = std::make_shared<Mapping>();
  const uint64_t file_size = input.size();
  if (file_size < 8) {
    ::close(fd);
    throw fail("not a safetensors file (shorter than its 8-byte header length)");
  }
  // Private, writable mapping: tensors handed out may be modified in place without touching the file.
  void* data = ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (data == MAP_FAILED) throw fail(std::string("cannot map: ") + std::strerror(errno));
  file.mapping_->data = data;
  file.mapping_->size = file_size;
  const auto* bytes = static_cast<const unsigned char*>(data);

  const uint64_t header_size = read_le64(bytes);
  if (header_size > kMaxHeaderBytes || header_size > file_size - 8)
    throw fail("corrupt safetensors header: header length " + std::to_string(header_size) + " exceeds the file size " +
               std::to_string(file_size));
  file.data_offset_ = 8 + header_size;
  const uint64_t data_size = file_size - file.data_offset_;

  nlohmann::json header;
  try {
    // The parse itself is bounded: a safetensors header nests 3 deep ({name: {shape: [...]}}), and a hostile
    // one of 100 MB of "[0,0,..." would otherwise become gigabytes of JSON values.
    uint64_t values = 0;
    const auto limit = [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
      if (depth > kMaxHeaderDepth) throw Error(path + ": corrupt safetensors header: nested deeper than a header is");
      if (++values > kMaxHeaderValues)
        throw Error(path + ": corrupt safetensors header: more than " + std::to_string(kMaxHeaderValues) + " values");
      return true;
    };
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_size, limit);
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("corrupt safetensors header (invalid JSON): ") + e.what());
  }
  if (!header.is_object()) throw fail("corrupt safetensors header: not a JSON object");

  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) throw fail("corrupt safetensors header: __metadata__ is not an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) throw fail("corrupt safetensors header: metadata '" + mk + "' is not a string");
        file.metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& what) { return fail("tensor '" + key + "': " + what); };
    if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") || !value.contains("data_offsets"))
      throw bad("entry needs dtype, shape and data_offsets");
    SafetensorsEntry e;
    e.name = key;
    if (!value["dtype"].is_string()) throw bad("dtype is not a string");
    e.dtype = value["dtype"].get<std::string>();
    at::ScalarType type;
    try {
      type = safetensors_scalar_type(e.dtype);
    } catch (const Error&) {
      throw bad("unsupported dtype '" + e.dtype + "'");
    }
    const auto& shape = value["shape"];
    if (!shape.is_array()) throw bad("shape is not an array");
    uint64_t numel = 1;
    for (const auto& d : shape) {
      if (!d.is_number_unsigned()) throw bad("shape has a negative or non-integer dimension");
      const auto dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim))
        throw bad("shape overflows");
      numel *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      throw bad("data_offsets must be two non-negative integers");
    e.begin = offsets[0].get<uint64_t>();
    e.end = offsets[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size)
      throw bad("data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                ") out of range (data section is " + std::to_string(data_size) + " bytes)");
    const uint64_t item = c10::elementSize(type);
    if (numel > std::numeric_limits<uint64_t>::max() / item || numel * item != e.end - e.begin)
      throw bad("byte range of " + std::to_string(e.end - e.begin) + " does not match shape and dtype (" +
                std::to_string(numel) + " x " + std::to_string(item) + " bytes)");
    file.entries_.push_back(std::move(e));
  }
  // The byte ranges must tile the data section exactly, as the reference implementation demands: a gap,
  // an overlap or trailing bytes mean the header and the data disagree (e.g. data shifted by a few bytes would
  // otherwise load, every tensor reading the wrong bytes).
  std::stable_sort(file.entries_.begin(), file.entries_.end(),
                   [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  uint64_t cursor = 0;
  for (size_t i = 0; i < file.entries_.size(); ++i) {
    const SafetensorsEntry& e = file.entries_[i];
    if (e.begin < cursor) throw fail("tensors '" + file.entries_[i - 1].name + "' and '" + e.name + "' overlap");
    if (e.begin > cursor)
      throw fail("tensor '" + e.name + "' starts at byte " + std::to_string(e.begin) + " of the data section, " +
                 "leaving a gap of " + std::to_string(e.begin - cursor) + " bytes (data and header disagree)");
    cursor = e.end;
    file.index_[e.name] = i;
  }
  if (cursor != data_size)
    throw fail(std::to_string(data_size - cursor) + " bytes after the last tensor's data (the data section is " +
               std::to_string(data_size) + " bytes, the header describes " + std::to_string(cursor) + ")");
  return file;
}

bool SafetensorsFile::contains(const std::string& name) const {
  return index_.count(name) != 0;
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error(path_ + ": no tensor named '" + name + "'");
  return entries_[it->second];
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const auto type = safetensors_scalar_type(e.dtype);
  auto* base = static_cast<unsigned char*>(mapping_->data) + data_offset_ + e.begin;
  const auto options = at::TensorOptions().dtype(type).device(at::kCPU);
  if (e.begin == e.end) return at::empty(e.shape, options);
  if (reinterpret_cast<uintptr_t>(base) % c10::elementSize(type) != 0) {
    // Misaligned for its dtype: copy out rather than hand out an unaligned view.
    at::Tensor out = at::empty(e.shape, options);
    std::memcpy(out.data_ptr(), base, e.end - e.begin);
    return out;
  }
  auto keep_alive = mapping_;
  return at::from_blob(
      base, e.shape, [keep_alive](void*) {}, options);
}

std::vector<std::pair<std::string, at::Tensor>> SafetensorsFile::tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.emplace_back(e.name, tensor(e.name));
  return out;
}

bool looks_like_safetensors(const std::string& path) {
  try {
    InputFile in(path);
    unsigned char head[9] = {};
    if (::pread(in.fd(), head, 9, 0) != 9) return false;
    const uint64_t n = read_le64(head);
    return n >= 2 && n <= kMaxHeaderBytes && head[8] == '{';
  } catch (const Error&) {
    return false;
  }
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::vector<at::Tensor> data;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (!seen.insert(name).second) throw Error("cannot write " + path + ": duplicate tensor name '" + name + "'");
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = c.numel() * c.element_size();
    header[name] = {{"dtype", safetensors_dtype_name(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(std::move(c));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((uint64_t(text.size()) >> (8 * i)) & 0xff);

  AtomicFile out(path);
  out.write(len, 8);
  out.write(text.data(), text.size());
  for (const auto& c : data) out.write(c.data_ptr(), c.numel() * c.element_size());
  out.commit();
}

}  // namespace lit
