// AtomicFile / AtomicPath: a symbolic link planted under any temporary name never redirects a write, and a
// failed write leaves nothing behind.
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <sstream>

#include "common/atomic_file.h"
#include "tests/test_util.h"

namespace lit {
namespace {

using test::fresh_temp_dir;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return names;
  while (const dirent* e = ::readdir(d))
    if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") names.push_back(e->d_name);
  ::closedir(d);
  return names;
}

TEST(AtomicFile, PlantedSymlinksAtEveryOldTemporaryNameLeaveTheVictimUntouched) {
  const std::string dir = fresh_temp_dir("atomic");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::string victim = dir + "/victim.txt", out = dir + "/out.bin";
  std::ofstream(victim) << "precious";
  // The old writer's predictable name, and the pid-only prefix of the new one.
  ASSERT_EQ(::symlink(victim.c_str(), (out + ".tmp-" + std::to_string(::getpid())).c_str()), 0);
  AtomicFile f(out);
  f.write("hello", 5);
  f.commit();
  EXPECT_EQ(slurp(victim), "precious");
  EXPECT_EQ(slurp(out), "hello");
  struct stat st {};
  ASSERT_EQ(::lstat(out.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST(AtomicFile, FinalNameThatIsASymlinkIsReplacedNotFollowed) {
  const std::string dir = fresh_temp_dir("atomic");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::string victim = dir + "/victim.txt", out = dir + "/out.bin";
  std::ofstream(victim) << "precious";
  ASSERT_EQ(::symlink(victim.c_str(), out.c_str()), 0);
  AtomicFile f(out);
  f.write("new", 3);
  f.commit();
  EXPECT_EQ(slurp(victim), "precious");
  EXPECT_EQ(slurp(out), "new");
}

TEST(AtomicFile, UncommittedWriteLeavesNothing) {
  const std::string dir = fresh_temp_dir("atomic");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  {
    AtomicFile f(dir + "/out.bin");
    f.write("partial", 7);
  }
  EXPECT_TRUE(names_in(dir).empty());
}

TEST(AtomicFile, UnsyncedCommitIsStillAtomicAndASyncOfTheFileSystemFollows) {
  // commit_unsynced: the bytes under the final name, no temporary left, the previous file replaced whole;
  // sync_file_system then makes the folder durable in one call (a missing path is a one-line error).
  const std::string dir = fresh_temp_dir("atomic_unsynced");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  std::ofstream(dir + "/out.bin") << "old contents";
  {
    AtomicFile f(dir + "/out.bin");
    f.write("new", 3);
    EXPECT_EQ(slurp(dir + "/out.bin"), "old contents");  // nothing visible before the commit
    f.commit_unsynced();
  }
  EXPECT_EQ(slurp(dir + "/out.bin"), "new");
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"out.bin"});
  EXPECT_NO_THROW(sync_file_system(dir));
  EXPECT_NE(test::error_of([&] { sync_file_system(dir + "/absent"); }).find(dir + "/absent"), std::string::npos);
}

TEST(AtomicFile, FullDiskIsReportedAndNothingIsLeft) {
  // A file size limit makes write(2) fail with EFBIG, as a full disk fails with ENOSPC; run it in a child so
  // the limit stays there.
  const std::string dir = fresh_temp_dir("atomic");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    try {
      AtomicFile f(dir + "/big.bin");
      const std::string block(1 << 16, 'x');
      f.write(block.data(), block.size());
      f.commit();
    } catch (const Error& e) {
      _exit(std::string(e.what()).find("File too large") != std::string::npos ? 0 : 2);
    }
    _exit(3);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(names_in(dir).empty());
}

TEST(AtomicPath, TemporaryLivesInAPrivateFolderAndIsCleanedUp) {
  const std::string dir = fresh_temp_dir("atomic");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::string out = dir + "/archive.zip";
  {
    AtomicPath p(out);
    struct stat st {};
    const std::string folder = p.temp_path().substr(0, p.temp_path().find_last_of('/'));
    ASSERT_EQ(::lstat(folder.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    std::ofstream(p.temp_path()) << "zip";
  }
  EXPECT_TRUE(names_in(dir).empty()) << "an uncommitted AtomicPath removes its folder";
  {
    AtomicPath p(out);
    std::ofstream(p.temp_path()) << "zip";
    p.commit();
  }
  EXPECT_EQ(slurp(out), "zip");
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"archive.zip"});
}

}  // namespace
}  // namespace lit
