#include "weights/image_io.h"

#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csetjmp>
#include <cstdio>
#include <cstring>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/input_limits.h"
#include "common/printable.h"
#include "weights/image_header.h"

#ifdef LIT_WITH_OPENCV_IMGCODECS
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#endif

namespace lit {
namespace {

constexpr unsigned char kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

std::string lowercase_extension(const std::string& path) {
  const size_t dot = path.find_last_of('.');
  const size_t slash = path.find_last_of('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

void write_bytes_atomically(const std::string& path, const void* data, size_t size, bool sync) {
  AtomicFile file(path);
  file.write(data, size);
  if (sync)
    file.commit();
  else
    file.commit_unsynced();
}

// PNG's tEXt chunks hold Latin-1; the rest of the program speaks UTF-8.
std::string latin1_to_utf8(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      out += static_cast<char>(0xc0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3f));
    }
  }
  return out;
}

// The Latin-1 bytes of a UTF-8 string, or false when it holds a character beyond U+00FF (or is not UTF-8).
bool utf8_to_latin1(const std::string& s, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if ((c == 0xc2 || c == 0xc3) && i + 1 < s.size() && (static_cast<unsigned char>(s[i + 1]) & 0xc0) == 0x80) {
      out += static_cast<char>(((c & 0x03) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3f));
      ++i;
    } else {
      return false;
    }
  }
  return true;
}

// libpng reports errors by calling this and expecting it not to return: it keeps the message and jumps
// back to the setjmp of the function that called libpng, which throws. (Throwing through libpng's C frames
// instead is not safe.)
struct PngErrorBuffer {
  char message[256] = "";
};

void on_png_error(png_structp png, png_const_charp message) {
  auto* buffer = static_cast<PngErrorBuffer*>(png_get_error_ptr(png));
  std::snprintf(buffer->message, sizeof buffer->message, "%s", message);
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp) {}  // the library never prints

const char* color_type_name(int type) {
  switch (type) {
    case PNG_COLOR_TYPE_GRAY:
      return "gray";
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      return "gray+alpha";
    case PNG_COLOR_TYPE_PALETTE:
      return "palette";
    case PNG_COLOR_TYPE_RGB:
      return "RGB";
    case PNG_COLOR_TYPE_RGB_ALPHA:
      return "RGBA";
    default:
      return "unknown";
  }
}

// Everything a PNG read touches lives here, created before setjmp and released by the destructor, so the
// longjmp of an error skips no C++ destructor.
struct PngReader {
  std::FILE* file = nullptr;
  png_structp png = nullptr;
  png_infop info = nullptr;
  PngErrorBuffer error;
  std::vector<png_bytep> rows;
  std::vector<unsigned char> scratch;
  ~PngReader() {
    if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    if (file) std::fclose(file);
  }
};

// Walks the chunk headers (seeking over their data) before libpng reads anything: a metadata chunk (anything
// but IDAT) longer than the cap, or too many of them, refuses the file. libpng's own chunk limit only warns
// for text chunks and still allocates them.
void check_png_chunks(const std::string& path, int fd, uint64_t file_size, const InputLimits& limits) {
  uint64_t pos = 8, count = 0;
  while (pos + 8 <= file_size) {
    unsigned char head[8];
    if (::pread(fd, head, 8, static_cast<off_t>(pos)) != 8) return;  // libpng reports the truncation
    const uint64_t length = (uint64_t{head[0]} << 24) | (uint64_t{head[1]} << 16) | (uint64_t{head[2]} << 8) | head[3];
    const std::string type(reinterpret_cast<const char*>(head + 4), 4);
    if (type == "IEND") return;
    if (type != "IDAT") {
      if (length > limits.max_png_chunk_bytes)
        throw Error(path + ": PNG chunk '" + printable(type) + "' of " + std::to_string(length) +
                    " bytes exceeds the limit of " + std::to_string(limits.max_png_chunk_bytes) +
                    " bytes for a metadata chunk");
      if (++count > limits.max_png_chunks)
        throw Error(path + ": more than " + std::to_string(limits.max_png_chunks) + " PNG metadata chunks");
    }
    pos += 12 + length;
  }
}

// Reads the whole PNG as 8-bit RGB into `pixels` (resized here) and fills `info`; with pixels == nullptr the
// image data is decoded one row at a time into a scratch row and dropped (to reach the text chunks after it).
void read_png(const std::string& path, PngInfo& info, at::Tensor* pixels) {
  PngReader r;
  const InputLimits limits = input_limits();
  {
    InputFile input(path);  // regular files only: a FIFO or a device is refused here
    check_png_chunks(path, input.fd(), input.size(), limits);
    r.file = input.release_to_stdio();
  }
  unsigned char signature[8] = {};
  if (std::fread(signature, 1, 8, r.file) != 8 || std::memcmp(signature, kPngSignature, 8) != 0)
    throw Error(path + ": not a PNG file");
  r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r.error, on_png_error, on_png_warning);
  if (r.png) r.info = png_create_info_struct(r.png);
  if (!r.png || !r.info) throw Error(path + ": out of memory reading PNG");
  if (setjmp(png_jmpbuf(r.png))) throw Error(path + ": broken PNG (" + r.error.message + ")");
  png_init_io(r.png, r.file);
  png_set_sig_bytes(r.png, 8);
  // Limits against decompression bombs, before libpng reads a chunk: no compressed chunk (zTXt, iTXt, iCCP)
  // inflates past max_png_chunk_bytes (libpng skips a larger one), at most max_png_chunks are kept, and the
  // pixel count is checked against the cap right after the header, before the image buffer exists.
  png_set_chunk_malloc_max(r.png, static_cast<png_alloc_size_t>(limits.max_png_chunk_bytes));
  png_set_chunk_cache_max(r.png, limits.max_png_chunks);
  png_read_info(r.png, r.info);
  png_uint_32 width = 0, height = 0;
  int depth = 0, color = 0;
  png_get_IHDR(r.png, r.info, &width, &height, &depth, &color, nullptr, nullptr, nullptr);
  info.width = width;
  info.height = height;
  info.bit_depth = depth;
  info.color_type = color_type_name(color);
  check_image_pixels(path, ImageHeader{"PNG", width, height});

  // To 8-bit RGB whatever the file holds: palette and low bit depths expanded, 16 bits cut to 8, gray
  // replicated, alpha dropped (as PIL's convert("RGB") does, which DiT's data loading uses).
  png_set_expand(r.png);
  png_set_strip_16(r.png);
  png_set_strip_alpha(r.png);
  png_set_gray_to_rgb(r.png);
  const int passes = png_set_interlace_handling(r.png);
  png_read_update_info(r.png, r.info);
  if (png_get_rowbytes(r.png, r.info) != static_cast<size_t>(width) * 3) png_error(r.png, "unexpected row layout");

  if (pixels) {
    *pixels = at::empty({static_cast<int64_t>(height), static_cast<int64_t>(width), 3}, at::kByte);
    r.rows.resize(height);
    for (png_uint_32 y = 0; y < height; ++y)
      r.rows[y] = pixels->data_ptr<uint8_t>() + static_cast<size_t>(y) * width * 3;
    png_read_image(r.png, r.rows.data());
  } else {
    r.scratch.resize(static_cast<size_t>(width) * 3);
    for (int pass = 0; pass < passes; ++pass)
      for (png_uint_32 y = 0; y < height; ++y) png_read_row(r.png, r.scratch.data(), nullptr);
  }
  png_read_end(r.png, r.info);  // text chunks after the image data land in the same info

  png_textp text = nullptr;
  const int count = png_get_text(r.png, r.info, &text, nullptr);
  for (int i = 0; i < count; ++i) {
    std::string value(text[i].text ? text[i].text : "");
    // tEXt and zTXt are Latin-1; iTXt is UTF-8.
    if (text[i].compression <= PNG_TEXT_COMPRESSION_zTXt) value = latin1_to_utf8(value);
    info.text.emplace_back(latin1_to_utf8(text[i].key), value);
  }
}

struct PngWriter {
  png_structp png = nullptr;
  png_infop info = nullptr;
  PngErrorBuffer error;
  std::vector<unsigned char> bytes;
  ~PngWriter() {
    if (png) png_destroy_write_struct(&png, info ? &info : nullptr);
  }
};

void append_bytes(png_structp png, png_bytep data, png_size_t size) {
  auto* out = static_cast<std::vector<unsigned char>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + size);
}

void flush_nothing(png_structp) {}

// The PNG file bytes of uint8 (H, W, C) pixels, C = 1 or 3, with text chunks.
std::vector<unsigned char> encode_png(const std::string& path, const at::Tensor& pixels, const TextChunks& chunks) {
  // png_text points into these strings: they must outlive png_write_info.
  std::vector<std::string> keys, values;
  std::vector<png_text> text(chunks.size());
  for (const auto& [key, value] : chunks) {
    std::string latin_key, latin_value;
    if (key.empty() || key.size() > 79 || !utf8_to_latin1(key, latin_key))
      throw Error(path + ": PNG text keyword '" + key + "' must be 1 to 79 Latin-1 characters");
    keys.push_back(latin_key);
    // Like PIL (which A1111 uses): tEXt when the text fits Latin-1, otherwise uncompressed iTXt in UTF-8.
    const bool latin = utf8_to_latin1(value, latin_value);
    values.push_back(latin ? latin_value : value);
    png_text& t = text[keys.size() - 1];
    t.compression = latin ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
    t.lang = nullptr;
    t.lang_key = nullptr;
  }
  for (size_t i = 0; i < text.size(); ++i) {
    text[i].key = const_cast<char*>(keys[i].c_str());
    text[i].text = const_cast<char*>(values[i].c_str());
    text[i].text_length = values[i].size();
  }

  const at::Tensor data = pixels.contiguous();
  const auto height = static_cast<png_uint_32>(data.size(0)), width = static_cast<png_uint_32>(data.size(1));
  const int channels = static_cast<int>(data.size(2));
  std::vector<png_bytep> rows(height);
  for (png_uint_32 y = 0; y < height; ++y)
    rows[y] = const_cast<png_bytep>(data.data_ptr<uint8_t>()) + static_cast<size_t>(y) * width * channels;

  PngWriter w;
  w.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &w.error, on_png_error, on_png_warning);
  if (w.png) w.info = png_create_info_struct(w.png);
  if (!w.png || !w.info) throw Error("cannot write " + path + ": out of memory");
  if (setjmp(png_jmpbuf(w.png))) throw Error("cannot write " + path + ": " + w.error.message);
  png_set_write_fn(w.png, &w.bytes, append_bytes, flush_nothing);
  png_set_IHDR(w.png, w.info, width, height, 8, channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!text.empty()) png_set_text(w.png, w.info, text.data(), static_cast<int>(text.size()));
  png_write_info(w.png, w.info);  // the text goes before the image data, where every reader looks
  png_write_image(w.png, rows.data());
  png_write_end(w.png, nullptr);
  return std::move(w.bytes);
}

void check_pixels(const std::string& path, const at::Tensor& pixels) {
  if (pixels.dim() != 3 || (pixels.size(2) != 3 && pixels.size(2) != 1) || pixels.scalar_type() != at::kByte ||
      pixels.size(0) < 1 || pixels.size(1) < 1)
    throw Error("cannot write " + path + ": expected uint8 pixels (H, W, 3) or (H, W, 1)");
}

}  // namespace

bool looks_like_png(const std::string& path) {
  try {
    const InputFile f(path);
    unsigned char signature[8] = {};
    return ::pread(f.fd(), signature, 8, 0) == 8 && std::memcmp(signature, kPngSignature, 8) == 0;
  } catch (const Error&) {
    return false;
  }
}

PngInfo read_png_info(const std::string& path) {
  PngInfo info;
  read_png(path, info, nullptr);
  return info;
}

at::Tensor read_image(const std::string& path) {
  if (looks_like_png(path)) {
    PngInfo info;
    at::Tensor pixels;
    read_png(path, info, &pixels);
    return pixels;
  }
  // Also "cannot open" for a missing file, "not a regular file" for a FIFO; the size is capped.
  const std::string bytes = read_input_file(path, input_limits().max_image_file_bytes);
  const auto header = sniff_image_header(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  if (!header) throw Error(path + ": not a PNG, JPEG, WebP or BMP image (or its header is damaged)");
  check_image_pixels(path, *header);
#ifdef LIT_WITH_OPENCV_IMGCODECS
  cv::Mat bgr;
  try {
    bgr = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data())),
                       cv::IMREAD_COLOR);
  } catch (const cv::Exception&) {
    throw Error(path + ": broken " + header->format + " image (the decoder refused it)");
  } catch (const std::bad_alloc&) {
    throw Error(path + ": out of memory decoding a " + header->format + " image");
  }
  if (bgr.empty()) throw Error(path + ": broken " + header->format + " image (the decoder could not read it)");
  // IMREAD_COLOR applies the EXIF orientation, which may swap the two sides.
  const auto cols = static_cast<uint64_t>(bgr.cols), rows = static_cast<uint64_t>(bgr.rows);
  if (!(cols == header->width && rows == header->height) && !(cols == header->height && rows == header->width))
    throw Error(path + ": " + header->format + " image decodes to " + std::to_string(bgr.cols) + " x " +
                std::to_string(bgr.rows) + " pixels, its header says " + std::to_string(header->width) + " x " +
                std::to_string(header->height));
  const at::Tensor t = at::from_blob(const_cast<unsigned char*>(bgr.ptr()), {bgr.rows, bgr.cols, 3},
                                     {static_cast<int64_t>(bgr.step[0]), 3, 1}, at::kByte);
  return t.flip({2}).contiguous();  // BGR -> RGB, and a copy that owns its memory
#else
  throw Error(path + ": not a PNG file (this build reads other formats only with OpenCV's imgcodecs)");
#endif
}

void write_image(const std::string& path, const at::Tensor& pixels, const ImageWriteOptions& options) {
  check_pixels(path, pixels);
  const at::Tensor cpu = pixels.to(at::kCPU);
  const std::string ext = lowercase_extension(path);
  if (ext == ".png") {
    const std::vector<unsigned char> bytes = encode_png(path, cpu, options.text);
    write_bytes_atomically(path, bytes.data(), bytes.size(), options.sync);
    return;
  }
  if (ext == ".jpg" || ext == ".jpeg" || ext == ".webp") {
#ifdef LIT_WITH_OPENCV_IMGCODECS
    const at::Tensor bgr = (cpu.size(2) == 3 ? cpu.flip({2}) : cpu).contiguous();
    const cv::Mat mat(static_cast<int>(bgr.size(0)), static_cast<int>(bgr.size(1)),
                      bgr.size(2) == 3 ? CV_8UC3 : CV_8UC1, bgr.data_ptr<uint8_t>());
    const int flag = ext == ".webp" ? cv::IMWRITE_WEBP_QUALITY : cv::IMWRITE_JPEG_QUALITY;
    std::vector<unsigned char> bytes;
    if (!cv::imencode(ext, mat, bytes, {flag, std::clamp(options.quality, 1, 100)}))
      throw Error("cannot write " + path + ": OpenCV could not encode it");
    write_bytes_atomically(path, bytes.data(), bytes.size(), options.sync);
    return;
#else
    throw Error("cannot write " + path + ": JPEG and WebP need OpenCV's imgcodecs, which this build lacks (use .png)");
#endif
  }
  throw Error("cannot write " + path + ": unknown image extension '" + ext + "' (use .png, .jpg or .webp)");
}

bool can_write_image_format(const std::string& path) {
  const std::string ext = lowercase_extension(path);
  if (ext == ".png") return true;
#ifdef LIT_WITH_OPENCV_IMGCODECS
  return ext == ".jpg" || ext == ".jpeg" || ext == ".webp";
#else
  return false;
#endif
}

std::string image_codecs_summary() {
#ifdef LIT_WITH_OPENCV_IMGCODECS
  return std::string("images: PNG (libpng ") + PNG_LIBPNG_VER_STRING + "), JPEG/WebP (OpenCV " + CV_VERSION + ")";
#else
  return std::string("images: PNG (libpng ") + PNG_LIBPNG_VER_STRING + "); no JPEG/WebP (OpenCV imgcodecs not found)";
#endif
}

at::Tensor images_to_uint8(const at::Tensor& images) {
  const at::Tensor x = images.detach().to(at::kFloat).clamp(-1, 1);
  return (((x + 1) / 2) * 255 + 0.5).clamp(0, 255).permute({0, 2, 3, 1}).to(at::kCPU, at::kByte).contiguous();
}

at::Tensor images_from_uint8(const at::Tensor& pixels) {
  at::Tensor p = pixels.dim() == 3 ? pixels.unsqueeze(0) : pixels;
  if (p.dim() != 4 || p.scalar_type() != at::kByte)
    throw Error("images_from_uint8: expected uint8 (N, H, W, C) pixels");
  return (p.permute({0, 3, 1, 2}).to(at::kFloat) / 127.5 - 1).contiguous();
}

}  // namespace lit
