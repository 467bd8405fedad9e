// Fashion-MNIST's reader against a gzip bomb and a FIFO (issue 24): refused with the file named, never
// std::bad_alloc after gigabytes.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>

#include "common/error.h"
#include "tests/test_util.h"
#include "tools/train/fashion_mnist.h"

namespace lit::test {
namespace {

TEST(FashionMnistHostile, GzipBombStopsAtTheSizeOfTheLargestSplit) {
  const std::string dir = fresh_temp_dir("fmnist");
  std::filesystem::create_directories(dir);
  const std::string images = dir + "/t10k-images-idx3-ubyte.gz";
  gzFile f = gzopen(images.c_str(), "wb9");
  ASSERT_NE(f, nullptr);
  const std::string zeros(1 << 20, '\0');
  for (int i = 0; i < 96; ++i) ASSERT_EQ(gzwrite(f, zeros.data(), static_cast<unsigned>(zeros.size())), 1 << 20);
  gzclose(f);
  EXPECT_LT(std::filesystem::file_size(images), 1u << 20) << "96 MiB of zeros compress to under 1 MiB";
  EXPECT_EQ(error_of([&] { train::load_fashion_mnist(dir, "t10k"); }),
            images + ": inflates to more than 78400016 bytes, more than a Fashion-MNIST IDX file holds");
}

TEST(FashionMnistHostile, FifoIsRefused) {
  const std::string dir = fresh_temp_dir("fmnist");
  std::filesystem::create_directories(dir);
  const std::string images = dir + "/t10k-images-idx3-ubyte.gz";
  ASSERT_EQ(::mkfifo(images.c_str(), 0600), 0);
  EXPECT_EQ(error_of([&] { train::load_fashion_mnist(dir, "t10k"); }), images + ": not a regular file (it is a FIFO)");
}

}  // namespace
}  // namespace lit::test
