// Progress of a long job on the terminal: a bar redrawn in place when stderr is a terminal, plain lines at
// most every few seconds when it is not (logs, CI), so neither floods a log file nor leaves a user guessing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace lit::cli {

class ProgressBar {
 public:
  // total: units of work (images, steps); label: what they are ("images").
  ProgressBar(int64_t total, std::string label, double line_interval_s = 10.0);
  ~ProgressBar();

  // done: units complete; detail: appended to the line (e.g. "step 120/250, 4.1 it/s").
  void update(int64_t done, const std::string& detail = "");
  // Ends the bar's line (terminal) and prints a final line with the total time.
  void finish(const std::string& detail = "");

  static std::string format_duration(double seconds);  // "3m05s", "1h02m", "12.3s"

 private:
  void draw(int64_t done, const std::string& detail, bool force);

  int64_t total_;
  std::string label_;
  double line_interval_s_;
  bool tty_;
  bool open_line_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int64_t first_done_ = -1;  // units already done when the bar started (a resumed run)
};

}  // namespace lit::cli
