#include "weights/zip_archive.h"

#include <sys/stat.h>
#include <zip.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/input_file.h"

namespace lit {
namespace {

// Deflate cannot expand data by more than about 1032:1; a larger claim is a corrupt or hostile header.
constexpr uint64_t kMaxDeflateRatio = 1032;

std::string zip_code_message(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string message = zip_error_strerror(&error);
  zip_error_fini(&error);
  return message;
}

zip_t* archive_of(void* p) {
  return static_cast<zip_t*>(p);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------------------
ZipReader::ZipReader(const std::string& path) : path_(path) {
  InputFile input(path);  // regular files only: libzip would block on a FIFO
  file_size_ = input.size();
  int code = 0;
  zip_t* archive = zip_fdopen(input.fd(), ZIP_CHECKCONS, &code);  // on success libzip owns the descriptor
  if (!archive) throw Error(path + ": cannot read as a zip archive: " + zip_code_message(code));
  input.release();
  archive_ = archive;
  const zip_int64_t count = zip_get_num_entries(archive, 0);
  if (count < 0) {
    zip_discard(archive);
    throw Error(path + ": cannot read the zip directory");
  }
  for (zip_uint64_t i = 0; i < static_cast<zip_uint64_t>(count); ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(archive, i, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME) || !(st.valid & ZIP_STAT_SIZE)) {
      zip_discard(archive);
      throw Error(path + ": corrupt zip directory entry " + std::to_string(i));
    }
    names_.emplace_back(st.name);
    sizes_.push_back(st.size);
    index_.emplace(names_.back(), names_.size() - 1);
  }
}

ZipReader::~ZipReader() {
  if (archive_) zip_discard(archive_of(archive_));
}

std::optional<size_t> ZipReader::find(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

// Everything a later read will rely on, checked before any buffer is sized from the directory's claims: the
// method, and a size the compressed bytes inside this file can actually produce.
void ZipReader::check_entry(size_t index) const {
  if (index >= names_.size()) throw Error(path_ + ": no zip entry " + std::to_string(index));
  const std::string what = path_ + ": entry '" + names_[index] + "'";
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(archive_of(archive_), index, 0, &st) != 0) throw Error(what + ": cannot stat");
  if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
    throw Error(what + ": encrypted entries are not supported");
  if (!(st.valid & ZIP_STAT_COMP_METHOD) || !(st.valid & ZIP_STAT_COMP_SIZE))
    throw Error(what + ": corrupt zip entry (no compression method or size)");
  if (st.comp_size > file_size_)
    throw Error(what + ": corrupt zip entry (" + std::to_string(st.comp_size) + " bytes in a file of " +
                std::to_string(file_size_) + ")");
  if (st.comp_method == ZIP_CM_STORE) {
    if (st.comp_size != st.size)
      throw Error(what + ": corrupt zip entry (stored, but " + std::to_string(st.comp_size) + " bytes hold " +
                  std::to_string(st.size) + ")");
  } else if (st.comp_method == ZIP_CM_DEFLATE) {
    if (st.size > st.comp_size * kMaxDeflateRatio + 64)
      throw Error(what + ": corrupt zip entry (claims " + std::to_string(st.size) + " bytes from " +
                  std::to_string(st.comp_size) + " deflated)");
  } else {
    throw Error(what + ": unsupported zip compression method " + std::to_string(st.comp_method) +
                " (only stored and deflate)");
  }
}

uint64_t ZipReader::entry_size(size_t index) const {
  check_entry(index);
  return sizes_[index];
}

ZipReader::Stream ZipReader::open(size_t index) const {
  check_entry(index);
  const std::string what = path_ + ": entry '" + names_[index] + "'";
  zip_file_t* file = zip_fopen_index(archive_of(archive_), index, 0);
  if (!file) throw Error(what + ": cannot open: " + zip_error_strerror(zip_get_error(archive_of(archive_))));
  return Stream(file, what, sizes_[index]);
}

std::string ZipReader::read(size_t index, uint64_t max_bytes) const {
  check_entry(index);
  if (sizes_[index] > max_bytes)
    throw Error(path_ + ": entry '" + names_[index] + "' is " + std::to_string(sizes_[index]) +
                " bytes, more than the " + std::to_string(max_bytes) + " allowed");
  Stream stream = open(index);
  std::string out(static_cast<size_t>(sizes_[index]), '\0');
  stream.read(out.data(), out.size());
  stream.finish();
  return out;
}

ZipReader::Stream::Stream(Stream&& other) noexcept
    : file_(other.file_), what_(std::move(other.what_)), size_(other.size_), position_(other.position_) {
  other.file_ = nullptr;
}

ZipReader::Stream::~Stream() {
  if (file_) zip_fclose(static_cast<zip_file_t*>(file_));
}

void ZipReader::Stream::read(void* dst, uint64_t n) {
  if (n > remaining())
    throw Error(what_ + ": truncated (needs " + std::to_string(n) + " more bytes, " + std::to_string(remaining()) +
                " left)");
  auto* out = static_cast<unsigned char*>(dst);
  auto* file = static_cast<zip_file_t*>(file_);
  while (n > 0) {
    const zip_int64_t got = zip_fread(file, out, n);
    if (got < 0) throw Error(what_ + ": corrupt data: " + zip_error_strerror(zip_file_get_error(file)));
    if (got == 0) throw Error(what_ + ": truncated data (the entry ends early)");
    out += got;
    n -= static_cast<uint64_t>(got);
    position_ += static_cast<uint64_t>(got);
  }
}

void ZipReader::Stream::finish() {
  if (remaining() != 0) throw Error(what_ + ": " + std::to_string(remaining()) + " unexpected bytes at its end");
  // One more read reaches the end of the entry, where libzip checks the CRC.
  unsigned char extra;
  auto* file = static_cast<zip_file_t*>(file_);
  const zip_int64_t got = zip_fread(file, &extra, 1);
  if (got < 0) throw Error(what_ + ": corrupt data: " + zip_error_strerror(zip_file_get_error(file)));
  if (got > 0) throw Error(what_ + ": holds more data than its recorded size");
}

// ---------------------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------------------
namespace {

// Adds an entry from a libzip source (taking ownership of it) with the given compression.
void add_source(zip_t* archive, const std::string& path, const std::string& name, zip_source_t* source, bool compress) {
  const zip_int64_t index = zip_file_add(archive, name.c_str(), source, ZIP_FL_ENC_UTF_8);
  if (index < 0) {
    zip_source_free(source);
    throw Error("cannot write " + path + ": " + zip_error_strerror(zip_get_error(archive)));
  }
  if (zip_set_file_compression(archive, static_cast<zip_uint64_t>(index), compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE,
                               0) != 0)
    throw Error("cannot write " + path + ": " + zip_error_strerror(zip_get_error(archive)));
}

}  // namespace

struct ZipWriter::Impl {
  explicit Impl(std::string path) : target(std::move(path)) {}
  AtomicPath target;
  zip_t* archive = nullptr;
  std::vector<std::vector<zip_buffer_fragment_t>> fragments;  // kept alive until zip_close
  std::set<std::string> names;
};

ZipWriter::ZipWriter(std::string path) : impl_(std::make_unique<Impl>(std::move(path))) {
  int code = 0;
  impl_->archive = zip_open(impl_->target.temp_path().c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
  if (!impl_->archive) throw Error("cannot write " + impl_->target.path() + ": " + zip_code_message(code));
}

ZipWriter::~ZipWriter() {
  if (impl_->archive) zip_discard(impl_->archive);
}

void ZipWriter::add(const std::string& name, const std::vector<std::pair<const void*, size_t>>& parts, bool compress) {
  const std::string& path = impl_->target.path();
  if (!impl_->archive) throw Error("cannot write " + path + ": archive already closed");
  if (!impl_->names.insert(name).second) throw Error("cannot write " + path + ": duplicate entry '" + name + "'");
  std::vector<zip_buffer_fragment_t> fragments;
  for (const auto& [data, size] : parts) {
    if (size == 0) continue;
    // libzip only reads the buffers; its fragment type is not const-qualified.
    fragments.push_back({static_cast<zip_uint8_t*>(const_cast<void*>(data)), size});
  }
  impl_->fragments.push_back(std::move(fragments));
  const auto& stored = impl_->fragments.back();
  zip_source_t* source = zip_source_buffer_fragment(impl_->archive, stored.data(), stored.size(), 0);
  if (!source) throw Error("cannot write " + path + ": " + zip_error_strerror(zip_get_error(impl_->archive)));
  add_source(impl_->archive, path, name, source, compress);
}

void ZipWriter::add_file(const std::string& name, const std::string& source_path, bool compress) {
  const std::string& path = impl_->target.path();
  if (!impl_->archive) throw Error("cannot write " + path + ": archive already closed");
  if (!impl_->names.insert(name).second) throw Error("cannot write " + path + ": duplicate entry '" + name + "'");
  zip_source_t* source = zip_source_file(impl_->archive, source_path.c_str(), 0, -1 /* to the end */);
  if (!source)
    throw Error("cannot write " + path + ": reading " + source_path + ": " +
                zip_error_strerror(zip_get_error(impl_->archive)));
  add_source(impl_->archive, path, name, source, compress);
}

void ZipWriter::commit() {
  const std::string& path = impl_->target.path();
  if (!impl_->archive) throw Error("cannot write " + path + ": archive already closed");
  if (impl_->names.empty()) {
    // libzip writes no file at all for an archive without entries; an empty zip is its end record alone.
    zip_discard(impl_->archive);
    impl_->archive = nullptr;
    AtomicFile out(path);
    const char end_record[22] = {'P', 'K', 5, 6};
    out.write(end_record, sizeof end_record);
    out.commit();
    return;
  }
  if (zip_close(impl_->archive) != 0) {
    const std::string message = zip_error_strerror(zip_get_error(impl_->archive));
    zip_discard(impl_->archive);
    impl_->archive = nullptr;
    throw Error("cannot write " + path + ": " + message);
  }
  impl_->archive = nullptr;
  impl_->fragments.clear();
  impl_->target.commit();
}

}  // namespace lit
