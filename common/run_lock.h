// RunFolderLock: an exclusive lock on an output folder for the length of a run, so that two runs writing
// into one folder cannot both succeed with a mixed set of files. The lock is an flock(2) on
// "<folder>/.lit-run.lock" (the file holds the owner's pid, for the message); the kernel releases it when the
// process ends in any way, so a killed run never leaves a stale lock.
#pragma once

#include <string>

namespace lit {

class RunFolderLock {
 public:
  // Creates the lock file if needed and takes the lock without waiting. Throws lit::Error
  // "<folder>: another lit run (pid N) is writing into this folder" when it is held.
  explicit RunFolderLock(const std::string& folder);
  ~RunFolderLock();  // releases the lock (the file stays: removing it would race with the next run)
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

  static constexpr const char* kFileName = ".lit-run.lock";

 private:
  int fd_ = -1;
};

}  // namespace lit
