// Ctrl-C and SIGTERM for the long commands (train, distill, generate): the first signal asks the command to
// stop at its next safe point (a checkpoint, the last complete image) and leaves it running until then; a
// further signal ends the program at once, but only one that comes kRepeatWindowSeconds or more after the
// first. The window is there because one request often arrives twice: coreutils `timeout -s INT` sends its
// signal to the command and then to the command's whole process group, microseconds apart, and a terminal's
// Ctrl-C reaches every process of the foreground group (a shell pipeline, a launcher and its workers).
#pragma once

#include <atomic>

namespace lit::cli {

inline constexpr double kRepeatWindowSeconds = 1.0;

// Installs the handlers of SIGINT and SIGTERM for its lifetime (the previous ones come back afterwards) and
// clears the request. One at a time.
class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

  // Set by the first signal; what the trainer's should_stop and run_generate's cancel read.
  static const std::atomic<bool>& requested();
  // The exit status that tells a caller which signal stopped the command: 128 + the signal (130 for SIGINT,
  // 143 for SIGTERM), as a shell reports a program the signal ended.
  static int exit_status();

 private:
  void (*previous_int_)(int);
  void (*previous_term_)(int);
};

}  // namespace lit::cli
