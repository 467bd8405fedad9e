// Helpers of the data-parallel tests: start the `lit` binary as the ranks of a job (the environment torchrun
// sets, a free port on 127.0.0.1), wait for them with a deadline, compare the weights they saved.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util.h"
#include "weights/safetensors.h"

namespace lit::test {

inline const std::string kLit = LIT_CLI_PATH;
constexpr int kStillRunning = -1000;

// A TCP port nobody listens on now (the kernel's pick for port 0).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Process {
  pid_t pid = -1;
  std::string output;  // the file holding its stdout and stderr
  // The exit code (128 + signal when killed), or kStillRunning after `seconds` (the process is then killed).
  int wait(double seconds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    int status = 0;
    while (true) {
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      if (r < 0) return -1;
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        return kStillRunning;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
};

// Starts `lit ARGS` as rank `rank` of `world` with torchrun's variables, its output into output_file.
inline Process spawn_rank(int rank, int world, int port, const std::string& args, const std::string& output_file) {
  const std::string command = "exec env RANK=" + std::to_string(rank) + " LOCAL_RANK=" + std::to_string(rank) +
                              " WORLD_SIZE=" + std::to_string(world) + " LOCAL_WORLD_SIZE=" + std::to_string(world) +
                              " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " " + kLit + " " + args +
                              " > " + output_file + " 2>&1";
  Process p;
  p.output = output_file;
  p.pid = ::fork();
  if (p.pid == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return p;
}

// Runs `lit ARGS` as every rank of a job of `world` processes and waits for all (rank r's command line gets
// extra[r] appended when given). A rank still running after `seconds` is killed and reports kStillRunning.
inline std::vector<CommandResult> run_ranks(int world, const std::string& args,
                                            const std::vector<std::string>& extra = {}, double seconds = 120) {
  const int port = free_port();
  std::vector<Process> ranks;
  for (int r = 0; r < world; ++r)
    ranks.push_back(spawn_rank(r, world, port, args + (r < static_cast<int>(extra.size()) ? extra[r] : ""),
                               temp_path("rank" + std::to_string(r) + ".txt")));
  std::vector<CommandResult> out;
  for (auto& p : ranks) {
    CommandResult c;
    c.exit_code = p.wait(seconds);
    c.output = read_text(p.output);
    out.push_back(c);
  }
  return out;
}

// ||a - b|| / ||b|| over every tensor of two safetensors files with the same names (float64 sums).
inline double weights_rel_error(const std::string& a_path, const std::string& b_path) {
  const SafetensorsFile a = SafetensorsFile::open(a_path), b = SafetensorsFile::open(b_path);
  double num = 0, den = 0;
  for (const auto& [name, ta] : a.tensors()) {
    if (!b.contains(name)) return INFINITY;
    const at::Tensor x = ta.to(at::kDouble), y = b.tensor(name).to(at::kDouble);
    if (x.sizes() != y.sizes()) return INFINITY;
    num += (x - y).pow(2).sum().item<double>();
    den += y.pow(2).sum().item<double>();
  }
  if (a.tensors().size() != b.tensors().size()) return INFINITY;
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// The "loss" of every line of <run>/log.jsonl, in order.
inline std::vector<double> log_losses(const std::string& run_dir) {
  std::ifstream in(run_dir + "/log.jsonl");
  std::vector<double> out;
  for (std::string line; std::getline(in, line);) {
    const auto at = line.find("\"loss\":");
    if (at == std::string::npos) continue;
    try {
      out.push_back(std::stod(line.substr(at + 7)));
    } catch (const std::exception&) {  // a line being written right now
    }
  }
  return out;
}

}  // namespace lit::test
