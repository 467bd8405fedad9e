#include "weights/npy.h"

#include <c10/util/Exception.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/input_file.h"
#include "weights/zip_archive.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the .npy reader assumes a little-endian host");

namespace lit {
namespace {

const char kMagic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
constexpr uint64_t kMaxHeaderBytes = 64 << 10;  // NumPy itself refuses headers above 10,000 bytes by default

struct DtypeCode {
  const char* code;  // descr without its byte-order character
  at::ScalarType type;
};
const DtypeCode kDtypes[] = {{"f2", at::kHalf}, {"f4", at::kFloat}, {"f8", at::kDouble},
                             {"u1", at::kByte}, {"i1", at::kChar},  {"i2", at::kShort},
                             {"i4", at::kInt},  {"i8", at::kLong},  {"b1", at::kBool}};

struct NpyHeader {
  at::ScalarType type = at::kFloat;
  std::vector<int64_t> shape;
  uint64_t data_bytes = 0;
};

// ---------------------------------------------------------------------------------------------------------
// The header dict: a Python literal; only strings, True/False and tuples of integers occur in it.
// ---------------------------------------------------------------------------------------------------------
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& what) : s_(text), what_(what) {}

  NpyHeader parse() {
    std::string descr;
    bool have_descr = false, have_order = false, have_shape = false, fortran = false;
    std::vector<int64_t> shape;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      expect(':');
      skip_space();
      if (key == "descr") {
        if (peek() == '[') fail("structured dtypes are not supported");
        descr = string_literal();
        have_descr = true;
      } else if (key == "fortran_order") {
        fortran = boolean();
        have_order = true;
      } else if (key == "shape") {
        shape = int_tuple();
        have_shape = true;
      } else {
        fail("unexpected header key '" + key + "'");
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') fail("expected ',' or '}' in the header");
    }
    if (!have_descr || !have_order || !have_shape) fail("header lacks descr, fortran_order or shape");
    if (fortran) fail("Fortran-ordered arrays are not supported (save a C-ordered array: np.ascontiguousarray)");
    NpyHeader h;
    h.type = scalar_type(descr);
    h.shape = shape;
    uint64_t numel = 1;
    for (int64_t d : shape) {
      if (d != 0 && numel > (uint64_t(1) << 62) / static_cast<uint64_t>(d)) fail("shape overflows");
      numel *= static_cast<uint64_t>(d);
    }
    h.data_bytes = numel * c10::elementSize(h.type);
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const { throw Error(what_ + ": " + problem); }
  char peek() {
    if (pos_ >= s_.size()) fail("truncated .npy header");
    return s_[pos_];
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n')) ++pos_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail(std::string("corrupt .npy header: expected '") + c + "'");
    ++pos_;
  }
  std::string string_literal() {
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("corrupt .npy header: expected a quoted string");
    const size_t end = s_.find(quote, pos_ + 1);
    if (end == std::string::npos) fail("corrupt .npy header: unterminated string");
    std::string out = s_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return out;
  }
  bool boolean() {
    if (s_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (s_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    fail("corrupt .npy header: fortran_order is not True or False");
  }
  std::vector<int64_t> int_tuple() {
    std::vector<int64_t> out;
    expect('(');
    while (true) {
      skip_space();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') fail("corrupt .npy header: shape holds a non-integer");
      int64_t v = 0;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) fail("shape dimension overflows");
        v = v * 10 + (s_[pos_++] - '0');
      }
      if (pos_ < s_.size() && s_[pos_] == 'L') ++pos_;  // Python 2 long
      if (out.size() >= 64) fail("more than 64 dimensions");
      out.push_back(v);
      skip_space();
      if (peek() == ',')
        ++pos_;
      else if (peek() != ')')
        fail("corrupt .npy header: expected ',' or ')' in shape");
    }
    ++pos_;
    return out;
  }
  at::ScalarType scalar_type(const std::string& descr) const {
    if (descr.size() == 3) {
      const char order = descr[0];
      const std::string code = descr.substr(1);
      for (const auto& d : kDtypes) {
        if (code != d.code) continue;
        const bool single_byte = c10::elementSize(d.type) == 1;
        if (order == '<' || order == '=' || (order == '|' && single_byte) || (order == '>' && single_byte))
          return d.type;
        if (order == '>') fail("big-endian arrays ('" + descr + "') are not supported");
      }
    }
    fail("unsupported dtype '" + descr + "' (supported: f2 f4 f8 i1 i2 i4 i8 u1 b1, little-endian)");
  }

  const std::string& s_;
  const std::string& what_;
  size_t pos_ = 0;
};

using ReadFn = std::function<void(void*, uint64_t)>;

// Reads magic, version and header through `read`; `what` names the file (or archive entry) in errors.
NpyHeader read_header(const ReadFn& read, const std::string& what, uint64_t available) {
  auto need = [&](uint64_t n) {
    if (n > available) throw Error(what + ": truncated .npy header");
    available -= n;
  };
  unsigned char prefix[8];
  need(8);
  read(prefix, 8);
  if (std::memcmp(prefix, kMagic, sizeof kMagic) != 0) throw Error(what + ": not a .npy array (no \\x93NUMPY magic)");
  const unsigned major = prefix[6];
  if (major < 1 || major > 3) throw Error(what + ": unsupported .npy version " + std::to_string(major));
  const int len_bytes = major == 1 ? 2 : 4;
  unsigned char len_le[4] = {};
  need(static_cast<uint64_t>(len_bytes));
  read(len_le, static_cast<uint64_t>(len_bytes));
  uint64_t header_len = 0;
  for (int i = len_bytes - 1; i >= 0; --i) header_len = (header_len << 8) | len_le[i];
  if (header_len > kMaxHeaderBytes) throw Error(what + ": .npy header of " + std::to_string(header_len) + " bytes");
  need(header_len);
  std::string text(static_cast<size_t>(header_len), '\0');
  read(text.data(), header_len);
  NpyHeader h = HeaderParser(text, what).parse();
  if (available != h.data_bytes)
    throw Error(what + ": holds " + std::to_string(available) + " data bytes, its header (shape and dtype) says " +
                std::to_string(h.data_bytes));
  return h;
}

at::Tensor read_array(const NpyHeader& h, const ReadFn& read, const std::string& what) {
  at::Tensor t;
  try {
    t = at::empty(h.shape, at::TensorOptions().dtype(h.type));
  } catch (const c10::Error&) {
    throw Error(what + ": cannot allocate " + std::to_string(h.data_bytes) + " bytes");
  }
  if (h.data_bytes > 0) read(t.data_ptr(), h.data_bytes);
  // NumPy booleans are bytes; any non-zero byte is true, and a torch bool must hold exactly 0 or 1.
  if (h.type == at::kBool) t = t.view(at::kByte).ne(0);
  return t;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s;
}

}  // namespace

std::string npy_descr(at::ScalarType type) {
  for (const auto& d : kDtypes)
    if (d.type == type) return std::string(c10::elementSize(type) == 1 ? "|" : "<") + d.code;
  throw Error(std::string(".npy files cannot hold ") + c10::toString(type) + " arrays");
}

std::string npy_header(at::ScalarType type, const std::vector<int64_t>& shape) {
  const std::string dict =
      "{'descr': '" + npy_descr(type) + "', 'fortran_order': False, 'shape': (" + shape_text(shape) + "), }";
  // Version 1.0 has a 2-byte header length; NumPy pads the whole header to a multiple of 64 bytes.
  const bool v1 = 10 + dict.size() + 1 <= 65535;
  const size_t prefix = v1 ? 10 : 12;
  const size_t padded = (prefix + dict.size() + 1 + 63) / 64 * 64;
  const size_t header_len = padded - prefix;
  std::string out(kMagic, sizeof kMagic);
  out += static_cast<char>(v1 ? 1 : 2);
  out += '\0';
  for (size_t i = 0; i < (v1 ? 2u : 4u); ++i) out += static_cast<char>((header_len >> (8 * i)) & 0xff);
  out += dict;
  out.append(header_len - dict.size() - 1, ' ');
  out += '\n';
  return out;
}

at::Tensor read_npy(const std::string& path) {
  const InputFile in(path);  // regular files only
  const ReadFn read = [&](void* dst, uint64_t n) {
    auto* out = static_cast<char*>(dst);
    while (n > 0) {
      const ssize_t got = ::read(in.fd(), out, n);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) throw Error(path + ": read failed" + (got < 0 ? std::string(": ") + std::strerror(errno) : ""));
      out += got;
      n -= static_cast<uint64_t>(got);
    }
  };
  const NpyHeader h = read_header(read, path, in.size());
  return read_array(h, read, path);
}

std::vector<std::pair<std::string, at::Tensor>> read_npz(const std::string& path) {
  const ZipReader zip(path);
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < zip.size(); ++i) {
    const std::string& name = zip.name(i);
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npy") != 0) continue;
    const std::string what = path + ": " + name;
    ZipReader::Stream stream = zip.open(i);
    const ReadFn read = [&](void* dst, uint64_t n) { stream.read(dst, n); };
    const NpyHeader h = read_header(read, what, stream.remaining());
    out.emplace_back(name.substr(0, name.size() - 4), read_array(h, read, what));
    stream.finish();
  }
  return out;
}

void write_npy(const std::string& path, const at::Tensor& array) {
  const at::Tensor c = array.detach().to(at::kCPU).contiguous();
  const std::string header = npy_header(c.scalar_type(), c.sizes().vec());
  AtomicFile out(path);
  out.write(header.data(), header.size());
  out.write(c.data_ptr(), c.numel() * c.element_size());
  out.commit();
}

void write_npz(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& arrays,
               bool compressed) {
  // The headers and contiguous copies must outlive the writer's commit (libzip reads them only then).
  std::vector<std::string> headers;
  std::vector<at::Tensor> data;
  headers.reserve(arrays.size());
  for (const auto& [name, array] : arrays) {
    if (name.empty()) throw Error("cannot write " + path + ": an array has an empty name");
    data.push_back(array.detach().to(at::kCPU).contiguous());
    headers.push_back(npy_header(data.back().scalar_type(), data.back().sizes().vec()));
  }
  ZipWriter zip(path);
  for (size_t i = 0; i < arrays.size(); ++i)
    zip.add(arrays[i].first + ".npy",
            {{headers[i].data(), headers[i].size()},
             {data[i].data_ptr(), static_cast<size_t>(data[i].numel() * data[i].element_size())}},
            compressed);
  zip.commit();
}

}  // namespace lit
