// RunFolderLock and the output checks: two runs cannot share a folder; outputs cannot be inputs or each other.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "common/output_paths.h"
#include "common/run_lock.h"
#include "tests/test_util.h"

namespace lit {
namespace {

using test::error_of;
using test::fresh_temp_dir;

TEST(RunFolderLock, SecondRunOnTheSameFolderIsRefusedAndTheLockDiesWithItsOwner) {
  const std::string dir = fresh_temp_dir("run");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  int ready[2], done[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(done), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // another run: takes the lock and holds it until told
    RunFolderLock lock(dir);
    char c = 1;
    (void)!::write(ready[1], &c, 1);
    (void)!::read(done[0], &c, 1);
    _exit(0);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  EXPECT_EQ(error_of([&] { RunFolderLock lock(dir); }),
            dir + ": another lit run (pid " + std::to_string(child) + ") is writing into this folder");
  ::kill(child, SIGKILL);  // killed, not released: the kernel drops the lock
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_NO_THROW(RunFolderLock lock(dir));
  for (int fd : {ready[0], ready[1], done[0], done[1]}) ::close(fd);
}

TEST(RunFolderLock, PlantedSymlinkIsRefused) {
  const std::string dir = fresh_temp_dir("run");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::string victim = dir + "/victim";
  std::ofstream(victim) << "precious";
  ASSERT_EQ(::symlink(victim.c_str(), (dir + "/" + RunFolderLock::kFileName).c_str()), 0);
  EXPECT_NE(error_of([&] { RunFolderLock lock(dir); }).find("cannot create the run lock"), std::string::npos);
  std::ifstream in(victim);
  std::string s;
  in >> s;
  EXPECT_EQ(s, "precious");
}

TEST(OutputPaths, OutputsMayNotBeInputsOrEachOther) {
  const std::string dir = fresh_temp_dir("paths");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::string ckpt = dir + "/model.pt";
  std::ofstream(ckpt) << "weights";
  ASSERT_EQ(::symlink(ckpt.c_str(), (dir + "/alias.png").c_str()), 0);
  ASSERT_EQ(::link(ckpt.c_str(), (dir + "/hard.npz").c_str()), 0);
  const NamedPaths inputs = {{"--ckpt", ckpt}};
  EXPECT_EQ(error_of([&] {
              check_outputs_distinct({{"--grid", dir + "/../paths_x/../" + "x"}}, inputs);
            }),
            "(no lit::Error)");
  EXPECT_EQ(error_of([&] {
              check_outputs_distinct({{"--grid", dir + "/alias.png"}}, inputs);
            }),
            "--grid " + dir + "/alias.png: is the input --ckpt " + ckpt + " (writing it would destroy the input)");
  EXPECT_NE(error_of([&] {
              check_outputs_distinct({{"--npz", dir + "/hard.npz"}}, inputs);
            }).find("is the input"),
            std::string::npos);
  EXPECT_EQ(error_of([&] {
              check_outputs_distinct({{"--grid", dir + "/g.png"}, {"--json", ""}, {"--npz", dir + "/./g.png"}}, {});
            }),
            "--npz " + dir + "/./g.png: is the same file as --grid " + dir + "/g.png");
  EXPECT_NO_THROW(check_outputs_distinct({{"--grid", dir + "/g.png"}, {"--npz", dir + "/s.npz"}}, inputs));
}

TEST(OutputPaths, UnwritableFoldersAreFoundBeforeAnyWork) {
  const std::string dir = fresh_temp_dir("paths");
  EXPECT_EQ(error_of([&] { check_output_writable("--npz", dir + "/sub/s.npz"); }),
            "--npz " + dir + "/sub/s.npz: cannot write into " + dir + "/sub: No such file or directory");
  EXPECT_NO_THROW(check_output_writable("--npz", dir + "/sub/s.npz", /*create_folders=*/true));
  EXPECT_EQ(error_of([&] { check_output_writable("--grid", dir); }),
            "--grid " + dir + ": is a folder, not a file name");
  EXPECT_NE(error_of([] { check_output_writable("--json", "/proc/self/x.json"); }).find("cannot write into /proc/self"),
            std::string::npos);
  EXPECT_NO_THROW(check_output_writable("--json", dir + "/x.json"));
}

}  // namespace
}  // namespace lit
