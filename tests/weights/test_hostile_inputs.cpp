// Hostile and careless inputs (issue 24): every reader refuses FIFOs and devices without blocking, refuses
// bombs before allocating for them, and refuses files whose parts disagree instead of loading wrong data.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <thread>

#include "common/error.h"
#include "common/input_limits.h"
#include "tests/test_util.h"
#include "tests/weights/png_builder.h"
#include "tests/weights/torch_file_builder.h"
#include "weights/checkpoint.h"
#include "weights/finite_check.h"
#include "weights/image_header.h"
#include "weights/image_io.h"
#include "weights/npy.h"
#include "weights/safetensors.h"
#include "weights/zip_archive.h"

namespace lit {
namespace {

using test::error_of;
using test::fixture;
using test::temp_path;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs `read` on a FIFO nobody writes to. A reader that blocks is released after 5 seconds by a watchdog that
// opens the write end, and the test fails on the time taken; a correct reader refuses at once.
void expect_fifo_refused(const std::string& reader, const std::function<void(const std::string&)>& read) {
  const std::string fifo = temp_path(reader + ".fifo");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::atomic<bool> finished{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 50 && !finished; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (finished) return;
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
  });
  const auto start = std::chrono::steady_clock::now();
  std::string message;
  try {
    read(fifo);
    message = "(no error)";
  } catch (const std::exception& e) {
    message = e.what();
  }
  finished = true;
  watchdog.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 2.0) << reader << " blocked on a FIFO";
  EXPECT_NE(message.find(fifo + ": not a regular file (it is a FIFO)"), std::string::npos) << reader << ": " << message;
  ::unlink(fifo.c_str());
}

TEST(HostileInputs, EveryReaderRefusesAFifoAtOnce) {
  expect_fifo_refused("safetensors", [](const std::string& p) { SafetensorsFile::open(p); });
  expect_fifo_refused("checkpoint", [](const std::string& p) { load_checkpoint(p); });
  expect_fifo_refused("npy", [](const std::string& p) { read_npy(p); });
  expect_fifo_refused("npz", [](const std::string& p) { read_npz(p); });
  expect_fifo_refused("zip", [](const std::string& p) { ZipReader z(p); });
  expect_fifo_refused("image", [](const std::string& p) { read_image(p); });
  expect_fifo_refused("png_info", [](const std::string& p) { read_png_info(p); });
  EXPECT_FALSE(looks_like_safetensors("/dev/zero"));
  EXPECT_FALSE(looks_like_png("/dev/zero"));
  EXPECT_EQ(error_of([] { load_checkpoint("/dev/zero"); }), "/dev/zero: not a regular file (it is a character device)");
  EXPECT_EQ(error_of([] { read_image("/dev/urandom"); }),
            "/dev/urandom: not a regular file (it is a character device)");
}

// --- safetensors: the data regions tile the data section exactly --------------------------------------------

// A safetensors file from a header text and data bytes.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[static_cast<size_t>(i)] = static_cast<char>((uint64_t(header.size()) >> (8 * i)) & 0xff);
  return out + header + data;
}

TEST(HostileInputs, SafetensorsDataMustTileTheDataSection) {
  const std::string path = temp_path("tiles.safetensors");
  const std::string data(32, '\x01');
  write_bytes(path, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                      R"("b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})",
                                      data));
  EXPECT_EQ(SafetensorsFile::open(path).entries().size(), 2u);
  // Data shifted by 64 bytes: the header still fits inside the file, and every tensor would read wrong bytes.
  write_bytes(path, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[64,80]},)"
                                      R"("b":{"dtype":"F32","shape":[4],"data_offsets":[80,96]}})",
                                      std::string(96, '\0')));
  EXPECT_EQ(error_of([&] { SafetensorsFile::open(path); }),
            path +
                ": tensor 'a' starts at byte 64 of the data section, leaving a gap of 64 bytes (data and header "
                "disagree)");
  write_bytes(path, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                      R"("b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})",
                                      data + "trailing garbage"));
  EXPECT_EQ(error_of([&] { SafetensorsFile::open(path); }),
            path + ": 16 bytes after the last tensor's data (the data section is 48 bytes, the header describes 32)");
  write_bytes(path, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                      R"("b":{"dtype":"F32","shape":[6],"data_offsets":[8,32]}})",
                                      data));
  EXPECT_EQ(error_of([&] { SafetensorsFile::open(path); }), path + ": tensors 'a' and 'b' overlap");
  // Zero-sized tensors may sit anywhere on the tiling.
  write_bytes(path, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                      R"("e":{"dtype":"F32","shape":[0],"data_offsets":[16,16]},)"
                                      R"("b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})",
                                      data));
  EXPECT_EQ(SafetensorsFile::open(path).entries().size(), 3u);
}

TEST(HostileInputs, SafetensorsHeaderParseIsBounded) {
  const std::string path = temp_path("nested.safetensors");
  write_bytes(path, safetensors_bytes(std::string(4096, '[') + std::string(4096, ']'), ""));
  EXPECT_EQ(error_of([&] { SafetensorsFile::open(path); }),
            path + ": corrupt safetensors header: nested deeper than a header is");
}

// --- torch.save zip: a storage's inflated size must be the one its pickle declares ---------------------------

TEST(HostileInputs, TorchZipStorageInflatingPastItsDeclaredSizeIsRefusedBeforeInflating) {
  const std::string path = temp_path("bomb.pt");
  // A 4-element float storage whose zip entry inflates to 16 MiB (a 2 GiB one is the same to the reader: the
  // size comes from the zip directory and is compared before any buffer exists).
  const std::string bomb(16u << 20, '\0');
  {
    ZipWriter zip(path);
    const std::string pickle = test::state_dict_pickle("w", "0", 4, {4}, {1});
    zip.add("archive/data.pkl", {{pickle.data(), pickle.size()}}, false);
    zip.add("archive/data/0", {{bomb.data(), bomb.size()}}, /*compress=*/true);
    zip.commit();
  }
  EXPECT_LT(read_bytes(path).size(), 100000u);
  EXPECT_EQ(error_of([&] { load_checkpoint(path); }),
            path + ": storage '0' of tensor 'w' holds 16777216 bytes in the file, its pickle declares 4 x 4 bytes");
}

// --- .npy: header caps ------------------------------------------------------------------------------------------

TEST(HostileInputs, NpyHeaderIsCapped) {
  const std::string path = temp_path("big_header.npy");
  std::string bytes("\x93NUMPY\x02\x00", 8);
  const uint32_t len = 1u << 30;
  for (int i = 0; i < 4; ++i) bytes += static_cast<char>((len >> (8 * i)) & 0xff);
  write_bytes(path, bytes + "{}");
  EXPECT_EQ(error_of([&] { read_npy(path); }), path + ": .npy header of 1073741824 bytes");
}

// --- images: pixels and chunk sizes are checked before decoding -------------------------------------------------

std::string tiny_png_claiming(uint32_t width, uint32_t height) {
  // 65 bytes: signature, a header that claims width x height, an empty compressed stream, the end.
  return test::png_signature() + test::png_ihdr(width, height) +
         test::png_chunk("IDAT", std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8)) + test::png_chunk("IEND", "");
}

TEST(HostileInputs, PngPixelBombIsRefusedFromItsHeader) {
  const std::string path = temp_path("bomb.png");
  write_bytes(path, tiny_png_claiming(100000, 100000));
  EXPECT_EQ(read_bytes(path).size(), 65u);
  const std::string expected = path +
                               ": PNG image of 100000 x 100000 pixels exceeds the limit of 67108864 pixels (raise "
                               "it with --max-image-pixels or LIT_MAX_IMAGE_PIXELS)";
  EXPECT_EQ(error_of([&] { read_image(path); }), expected);
  EXPECT_EQ(error_of([&] { read_png_info(path); }), expected);
  // The cap is settable: raised, the header passes and the missing pixel data is what fails.
  const InputLimits saved = input_limits();
  InputLimits raised = saved;
  raised.max_image_pixels = uint64_t(100000) * 100000;
  set_input_limits(raised);
  EXPECT_EQ(error_of([&] { read_png_info(path); }).find("exceeds the limit"), std::string::npos);
  set_input_limits(saved);
  // 8192 x 8192 is exactly the default cap; one row more is not.
  write_bytes(path, tiny_png_claiming(8192, 8193));
  EXPECT_NE(error_of([&] { read_image(path); }).find("exceeds the limit of 67108864 pixels"), std::string::npos);
}

TEST(HostileInputs, OversizedPngTextChunksAreRefusedBeforeAllocation) {
  // A 4 MiB text chunk (over the 1 MiB cap for metadata chunks) refuses the file before libpng reads it.
  const std::string path = temp_path("big_text.png");
  write_image(path, at::zeros({2, 3, 3}, at::kByte),
              {{{"parameters", "a cat"}, {"comment", std::string(4u << 20, 'A')}}});
  const std::string expected =
      path + ": PNG chunk 'tEXt' of 4194312 bytes exceeds the limit of 1048576 bytes for a metadata chunk";
  EXPECT_EQ(error_of([&] { read_png_info(path); }), expected);
  EXPECT_EQ(error_of([&] { read_image(path); }), expected);
  // A chunk that declares 2 GB in a file of a few bytes is refused the same way.
  std::string png = tiny_png_claiming(1, 1);
  png.insert(33, test::be32_bytes(0x7fffffffu) + "zTXt");
  write_bytes(path, png);
  EXPECT_NE(error_of([&] { read_png_info(path); }).find("PNG chunk 'zTXt' of 2147483647 bytes exceeds the limit"),
            std::string::npos);
  // Within the cap, text reads as before.
  write_image(path, at::zeros({2, 3, 3}, at::kByte), {{{"parameters", std::string(1000, 'b')}}});
  EXPECT_EQ(read_png_info(path).text.at(0).second, std::string(1000, 'b'));
}

TEST(HostileInputs, ImageHeadersAreSniffedForEveryFormat) {
  auto sniff = [](const std::string& b) {
    return sniff_image_header(reinterpret_cast<const unsigned char*>(b.data()), b.size());
  };
  const auto png = sniff(tiny_png_claiming(640, 480));
  ASSERT_TRUE(png);
  EXPECT_EQ(png->format, "PNG");
  EXPECT_EQ(png->width, 640u);
  EXPECT_EQ(png->height, 480u);
  // JPEG: SOI, an APP0 segment, then SOF0 with height 60000 and width 50000.
  const std::string jpeg = std::string("\xff\xd8\xff\xe0\x00\x04\x00\x00\xff\xc0\x00\x11\x08\xea\x60\xc3\x50\x03", 18) +
                           std::string(12, '\0');
  const auto j = sniff(jpeg);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->format, "JPEG");
  EXPECT_EQ(j->width, 50000u);
  EXPECT_EQ(j->height, 60000u);
  // WebP VP8X with a 16384 x 16384 canvas (stored minus one, 24-bit little-endian).
  std::string webp =
      std::string("RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0", 24) + std::string("\xff\x3f\x00\xff\x3f\x00", 6);
  const auto w = sniff(webp);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->width, 16384u);
  EXPECT_EQ(w->height, 16384u);
  // BMP with a negative (top-down) height.
  std::string bmp = std::string("BM", 2) + std::string(12, '\0') + std::string("\x28\0\0\0", 4) +
                    std::string("\x10\0\0\0\xf0\xff\xff\xff", 8);
  const auto b = sniff(bmp);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->width, 16u);
  EXPECT_EQ(b->height, 16u);
  EXPECT_FALSE(sniff("GIF89a...................................."));
  EXPECT_FALSE(sniff(std::string("\xff\xd8\xff\xda", 4)));  // scan data before any frame header
  // The JPEG bomb is refused by the same cap, before OpenCV sees it.
  const std::string path = temp_path("bomb.jpg");
  write_bytes(path, jpeg);
  EXPECT_NE(error_of([&] { read_image(path); }).find("JPEG image of 50000 x 60000 pixels exceeds the limit"),
            std::string::npos);
  write_bytes(path, "GIF89a and more");
  EXPECT_EQ(error_of([&] { read_image(path); }),
            path + ": not a PNG, JPEG, WebP or BMP image (or its header is damaged)");
}

// --- NaN / Inf weights ----------------------------------------------------------------------------------------

TEST(HostileInputs, NonFiniteWeightsAreNamed) {
  StateDict weights;
  weights.insert("fine", at::ones({4}));
  weights.insert("labels", at::arange(4));
  at::Tensor broken = at::ones({8}, at::kHalf);
  broken[1] = NAN;
  broken[2] = NAN;
  broken[5] = INFINITY;
  weights.insert("blocks.0.attn.qkv.weight", broken);
  EXPECT_EQ(error_of([&] { check_finite_weights(weights, "ckpt.safetensors"); }),
            "ckpt.safetensors: tensor 'blocks.0.attn.qkv.weight' holds 2 NaN and 1 infinite values of 8 (broken "
            "weights; --allow-non-finite-weights or LIT_ALLOW_NON_FINITE_WEIGHTS=1 loads them anyway)");
  StateDict good;
  good.insert("fine", at::ones({4}));
  EXPECT_NO_THROW(check_finite_weights(good, "x"));
  EXPECT_FALSE(non_finite_weights_allowed());
}

}  // namespace
}  // namespace lit
