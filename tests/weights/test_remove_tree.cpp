// remove_tree: folders with everything under them, links removed and never followed, clear failures.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/test_util.h"
#include "common/atomic_file.h"

namespace lit::test {
namespace {

namespace fs = std::filesystem;

TEST(RemoveTree, RemovesNestedFoldersAndLinksButNotTheirTargets) {
  const std::string root = temp_path("remove_tree");
  const std::string outside = temp_path("remove_tree_target.txt");
  ASSERT_TRUE(remove_tree(root));
  fs::create_directories(root + "/a/b/c");
  std::ofstream(root + "/a/one.bin") << "1";
  std::ofstream(root + "/a/b/c/two.bin") << "2";
  std::ofstream(outside) << "keep me";
  fs::create_symlink(outside, root + "/a/link-to-file");
  fs::create_directory_symlink(fs::temp_directory_path(), root + "/a/b/link-to-folder");
  std::string error;
  EXPECT_TRUE(remove_tree(root, &error)) << error;
  EXPECT_FALSE(fs::exists(root));
  EXPECT_TRUE(fs::exists(outside)) << "a link's target survives";
  EXPECT_TRUE(fs::exists(fs::temp_directory_path()));
  EXPECT_TRUE(remove_tree(outside, &error)) << "a plain file is removed too";
  EXPECT_FALSE(fs::exists(outside));
}

TEST(RemoveTree, MissingPathIsNotAnErrorAndFailuresNameThePath) {
  EXPECT_TRUE(remove_tree(temp_path("remove_tree_never_created")));
  std::string error;
  EXPECT_FALSE(remove_tree("/proc/self/status", &error));  // procfs refuses every unlink, also for root
  EXPECT_NE(error.find("/proc/self/status"), std::string::npos) << error;
}

}  // namespace
}  // namespace lit::test
