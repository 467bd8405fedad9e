#include "tools/cli/interrupt.h"

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <ctime>

namespace lit::cli {
namespace {

std::atomic<bool> g_requested{false};
std::atomic<int> g_signal{0};
std::atomic<int64_t> g_first_ns{0};

int64_t monotonic_ns() {  // clock_gettime is async-signal-safe
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

extern "C" void on_stop_signal(int signal) {
  const int64_t now = monotonic_ns();
  if (!g_requested.load()) {
    g_first_ns = now;
    g_signal = signal;
    g_requested = true;
    return;
  }
  if (now - g_first_ns.load() >= static_cast<int64_t>(kRepeatWindowSeconds * 1e9)) std::_Exit(128 + signal);
}

}  // namespace

InterruptGuard::InterruptGuard() {
  g_requested = false;
  g_signal = 0;
  previous_int_ = std::signal(SIGINT, on_stop_signal);
  previous_term_ = std::signal(SIGTERM, on_stop_signal);
}

InterruptGuard::~InterruptGuard() {
  std::signal(SIGINT, previous_int_ == SIG_ERR ? SIG_DFL : previous_int_);
  std::signal(SIGTERM, previous_term_ == SIG_ERR ? SIG_DFL : previous_term_);
}

const std::atomic<bool>& InterruptGuard::requested() {
  return g_requested;
}

int InterruptGuard::exit_status() {
  return 128 + (g_signal.load() == 0 ? SIGINT : g_signal.load());
}

}  // namespace lit::cli
