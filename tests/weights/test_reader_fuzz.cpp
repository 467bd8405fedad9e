// The readers' fuzz (issue 24): seeded mutations of real fixtures fed to every file reader (safetensors,
// .npy, .npz, torch.save zip and legacy, PNG, JPEG through OpenCV, zip). Each mutated file must either read or
// be refused with a lit::Error: no crash (the suite runs under ASan + UBSan in tools/test.sh), no other
// exception type (no library internals in messages), and a bounded peak memory.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>

#include "common/error.h"
#include "tests/test_util.h"
#include "weights/checkpoint.h"
#include "weights/image_io.h"
#include "weights/npy.h"
#include "weights/safetensors.h"
#include "weights/zip_archive.h"

namespace lit {
namespace {

using test::fixture;
using test::temp_path;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Mutations per reader: LIT_FUZZ_ITERATIONS overrides (e.g. 100000 for a long local run).
int iterations() {
  const char* env = std::getenv("LIT_FUZZ_ITERATIONS");
  return env ? std::atoi(env) : 400;
}

// One seeded mutation: bit flips, interesting bytes or 32/64-bit values, truncation, insertion, deletion.
// Half of them land in the first or last 4 KiB, where the headers, pickles and zip directories live.
std::string mutate(const std::string& original, std::mt19937_64& rng) {
  std::string s = original;
  auto position = [&]() -> size_t {
    if (s.empty()) return 0;
    const uint64_t r = rng() % 4;
    const size_t window = std::min<size_t>(4096, s.size());
    if (r == 0) return rng() % window;
    if (r == 1) return s.size() - 1 - rng() % window;
    return rng() % s.size();
  };
  static const uint64_t kValues[] = {0,          1,          0x7f,       0x80,       0xff,
                                     0x7fff,     0xffff,     0x7fffffff, 0x80000000, 0xffffffff,
                                     1ull << 32, 1ull << 40, 1ull << 62, ~0ull,      0x7fffffffffffffffull};
  const int rounds = 1 + static_cast<int>(rng() % 3);
  for (int k = 0; k < rounds && !s.empty(); ++k) {
    switch (rng() % 7) {
      case 0:
      case 1:
        s[position()] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 2:
        s[position()] = static_cast<char>(kValues[rng() % 5]);
        break;
      case 3: {
        const size_t width = rng() % 2 ? 4 : 8, at = position();
        const uint64_t v = kValues[rng() % (sizeof kValues / sizeof kValues[0])];
        for (size_t i = 0; i < width && at + i < s.size(); ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
        break;
      }
      case 4:
        s.resize(position());
        break;
      case 5: {
        std::string junk(1 + rng() % 16, '\0');
        for (char& c : junk) c = static_cast<char>(rng());
        s.insert(position(), junk);
        break;
      }
      default: {
        const size_t at = position();
        s.erase(at, std::min<size_t>(1 + rng() % 64, s.size() - at));
      }
    }
  }
  return s;
}

long peak_rss_kib() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// Feeds `iterations()` mutations of `seed_file` to `read`; every outcome but a lit::Error or success fails.
void fuzz(const std::string& name, const std::string& seed_bytes, const std::function<void(const std::string&)>& read,
          uint64_t seed) {
  const std::string path = temp_path(name);
  write_bytes(path, seed_bytes);
  ASSERT_NO_THROW(read(path)) << name << ": the unmutated seed must read";
  std::mt19937_64 rng(seed);
  int refused = 0, read_ok = 0;
  const int n = iterations();
  for (int i = 0; i < n; ++i) {
    write_bytes(path, mutate(seed_bytes, rng));
    try {
      read(path);
      ++read_ok;
    } catch (const Error& e) {
      const std::string what = e.what();
      ASSERT_EQ(what.find('\n'), std::string::npos) << name << " #" << i << ": a message of several lines: " << what;
      ++refused;
    } catch (const std::exception& e) {
      FAIL() << name << " mutation #" << i << " (seed " << seed << "): not a lit::Error: " << e.what();
    }
  }
  std::remove(path.c_str());
  std::printf("[ fuzz     ] %-22s %d mutations: %d refused, %d read\n", name.c_str(), n, refused, read_ok);
}

// Reads everything a command would: every tensor's bytes, summed, so that a view past the data would be hit.
void touch_all(const StateDict& tensors) {
  for (const auto& [name, t] : tensors) (void)t.to(at::kDouble).sum().item<double>();
}

TEST(ReaderFuzz, Safetensors) {
  fuzz(
      "io.safetensors", read_bytes(fixture("dit/dit_tiny_io.safetensors")),
      [](const std::string& p) {
        const SafetensorsFile f = SafetensorsFile::open(p);
        for (const auto& [name, t] : f.tensors()) (void)t.to(at::kDouble).sum().item<double>();
      },
      1);
}

TEST(ReaderFuzz, TorchZip) {
  fuzz(
      "zip.pt", read_bytes(fixture("dit/dit_tiny.pt")),
      [](const std::string& p) { touch_all(load_checkpoint(p).tensors); }, 2);
}

// Zip CRCs refuse almost every mutation of a .pt or .npz before its contents are parsed; these rebuild a valid
// archive around mutated contents, so the pickle and .npy parsers behind the zip reader are fuzzed too.
TEST(ReaderFuzz, TorchPickleInsideAValidZip) {
  const ZipReader original(fixture("dit/dit_tiny.pt"));
  std::vector<std::pair<std::string, std::string>> entries;
  for (size_t i = 0; i < original.size(); ++i) entries.emplace_back(original.name(i), original.read(i, 1 << 24));
  std::string pickle_seed;
  for (const auto& [name, bytes] : entries)
    if (name.size() >= 8 && name.compare(name.size() - 8, 8, "data.pkl") == 0) pickle_seed = bytes;
  ASSERT_FALSE(pickle_seed.empty());
  // The seed "file" is the pickle; the reader wraps it in a zip with the fixture's storages.
  fuzz(
      "data.pkl", pickle_seed,
      [&](const std::string& p) {
        const std::string pickle = read_bytes(p);
        const std::string zip_path = p + ".pt";
        {
          ZipWriter zip(zip_path);
          for (const auto& [name, bytes] : entries) {
            const bool is_pickle = name.size() >= 8 && name.compare(name.size() - 8, 8, "data.pkl") == 0;
            const std::string& content = is_pickle ? pickle : bytes;
            zip.add(name, {{content.data(), content.size()}}, false);
          }
          zip.commit();
        }
        touch_all(load_checkpoint(zip_path).tensors);
      },
      10);
}

TEST(ReaderFuzz, NpyInsideAValidNpz) {
  const std::string npy = temp_path("seed.npy");
  write_npy(npy, at::arange(12, at::kDouble).reshape({3, 4}));
  fuzz(
      "entry.npy", read_bytes(npy),
      [](const std::string& p) {
        const std::string bytes = read_bytes(p);
        const std::string npz = p + ".npz";
        {
          ZipWriter zip(npz);
          zip.add("mu.npy", {{bytes.data(), bytes.size()}}, /*compress=*/true);
          zip.commit();
        }
        for (const auto& [name, t] : read_npz(npz)) (void)t.to(at::kDouble).sum().item<double>();
      },
      11);
}

TEST(ReaderFuzz, TorchLegacy) {
  fuzz(
      "legacy.pt", read_bytes(fixture("dit/dit_tiny_legacy.pt")),
      [](const std::string& p) { touch_all(load_checkpoint(p).tensors); }, 3);
}

TEST(ReaderFuzz, NpzStoredAndCompressed) {
  const auto read = [](const std::string& p) {
    for (const auto& [name, t] : read_npz(p)) (void)t.to(at::kDouble).sum().item<double>();
  };
  fuzz("stats.npz", read_bytes(fixture("fid/stats_a.npz")), read, 4);
  fuzz("compressed.npz", read_bytes(fixture("fid/stats_b_compressed.npz")), read, 5);
}

TEST(ReaderFuzz, NpyAndZipEntries) {
  const std::string npy = temp_path("seed.npy");
  write_npy(npy, at::arange(24, at::kFloat).reshape({2, 3, 4}));
  fuzz(
      "array.npy", read_bytes(npy), [](const std::string& p) { (void)read_npy(p).sum().item<double>(); }, 6);
  fuzz(
      "entries.zip", read_bytes(fixture("fid/ref_batch_adm_style.npz")),
      [](const std::string& p) {
        const ZipReader zip(p);
        for (size_t i = 0; i < zip.size(); ++i) (void)zip.read(i, 1 << 20);
      },
      7);
}

TEST(ReaderFuzz, Images) {
  at::manual_seed(24);  // the seed images, like the mutations, are the same on every run
  const at::Tensor pixels = at::randint(0, 256, {16, 24, 3}, at::TensorOptions().dtype(at::kByte));
  const std::string png = temp_path("seed.png");
  write_image(png, pixels, {{{"parameters", "a cat\nSteps: 50, Sampler: DDPM"}, {"comment", "caf\xc3\xa9"}}});
  const auto read = [](const std::string& p) {
    (void)read_image(p);
    if (looks_like_png(p)) (void)read_png_info(p);
  };
  fuzz("image.png", read_bytes(png), read, 8);
  if (can_write_image_format("x.jpg")) {
    const std::string jpg = temp_path("seed.jpg");
    write_image(jpg, pixels);
    fuzz("image.jpg", read_bytes(jpg), read, 9);
  }
}

TEST(ReaderFuzz, PeakMemoryStaysBounded) {
  // Runs after the others in this binary (gtest keeps file order): the largest resident set any mutation
  // caused. The fixtures are under 1 MiB; a reader that believed a header's claim would reach gigabytes.
  const long peak_mib = peak_rss_kib() / 1024;
  std::printf("[ fuzz     ] peak resident memory of the test process: %ld MiB\n", peak_mib);
  EXPECT_LT(peak_mib, 1536);
}

}  // namespace
}  // namespace lit
