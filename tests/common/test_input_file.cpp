// InputFile: FIFOs, devices and folders are refused at open, without blocking.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>

#include "common/input_file.h"
#include "tests/test_util.h"

namespace lit {
namespace {

using test::error_of;
using test::temp_path;

TEST(InputFile, FifoIsRefusedWithoutBlocking) {
  const std::string fifo = temp_path("fifo");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto result = std::async(std::launch::async, [&] { return error_of([&] { InputFile f(fifo); }); });
  ASSERT_EQ(result.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "open blocked on a FIFO";
  EXPECT_EQ(result.get(), fifo + ": not a regular file (it is a FIFO)");
  ::unlink(fifo.c_str());
}

TEST(InputFile, DevicesAndFoldersAreRefused) {
  EXPECT_EQ(error_of([] { InputFile f("/dev/zero"); }), "/dev/zero: not a regular file (it is a character device)");
  EXPECT_EQ(error_of([] { InputFile f("/tmp"); }), "/tmp: not a regular file (it is a folder)");
  EXPECT_EQ(error_of([] { InputFile f("/nonexistent/x"); }), "/nonexistent/x: cannot open: No such file or directory");
}

TEST(InputFile, ReadsARegularFileWithinItsCap) {
  const std::string path = temp_path("data");
  std::ofstream(path) << "0123456789";
  EXPECT_EQ(check_input_file(path), 10u);
  EXPECT_EQ(read_input_file(path, 10), "0123456789");
  EXPECT_NE(error_of([&] { read_input_file(path, 9); }).find("10 bytes, more than the 9 accepted"), std::string::npos);
  InputFile f(path);
  std::FILE* stream = f.release_to_stdio();
  char buf[4] = {};
  EXPECT_EQ(std::fread(buf, 1, 3, stream), 3u);
  EXPECT_EQ(std::string(buf), "012");
  std::fclose(stream);
}

}  // namespace
}  // namespace lit
