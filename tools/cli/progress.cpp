#include "tools/cli/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace lit::cli {

ProgressBar::ProgressBar(int64_t total, std::string label, double line_interval_s)
    : total_(total), label_(std::move(label)), line_interval_s_(line_interval_s), tty_(::isatty(STDERR_FILENO) != 0) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

ProgressBar::~ProgressBar() {
  if (open_line_) std::fputc('\n', stderr);
}

std::string ProgressBar::format_duration(double s) {
  char buf[32];
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, (static_cast<int>(s) % 3600) / 60);
  }
  return buf;
}

void ProgressBar::update(int64_t done, const std::string& detail) {
  draw(done, detail, false);
}

void ProgressBar::draw(int64_t done, const std::string& detail, bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (first_done_ < 0) first_done_ = done;
  const double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  if (!force && since_draw < (tty_ ? 0.1 : line_interval_s_)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done - first_done_) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : NAN;
  char line[512];
  const double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  if (tty_) {
    constexpr int kWidth = 28;
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(kWidth - filled), '.');
    std::snprintf(line, sizeof line, "\r[%s] %lld/%lld %s  %.2f %s/s  ETA %s  %s\x1b[K", bar.c_str(),
                  static_cast<long long>(done), static_cast<long long>(total_), label_.c_str(), rate, label_.c_str(),
                  format_duration(eta).c_str(), detail.c_str());
    std::fputs(line, stderr);
    open_line_ = true;
  } else {
    std::snprintf(line, sizeof line, "%lld/%lld %s (%.0f%%), %.2f %s/s, elapsed %s, ETA %s%s%s\n",
                  static_cast<long long>(done), static_cast<long long>(total_), label_.c_str(), 100.0 * frac, rate,
                  label_.c_str(), format_duration(elapsed).c_str(), format_duration(eta).c_str(),
                  detail.empty() ? "" : ", ", detail.c_str());
    std::fputs(line, stderr);
  }
  std::fflush(stderr);
}

void ProgressBar::finish(const std::string& detail) {
  draw(total_, detail, true);
  if (open_line_) std::fputc('\n', stderr);
  open_line_ = false;
}

}  // namespace lit::cli
