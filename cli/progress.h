// A one-line progress bar on stderr for the CLI's long transfers.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

namespace lazysnap::cli {

// A one-line progress bar on stderr, redrawn at most 10 times a second, only on a terminal.
class Progress {
 public:
  explicit Progress(uint64_t total, std::string label = "")
      : total_(total), label_(std::move(label)), tty_(::isatty(2) == 1) {}
  void Add(uint64_t n) {
    done_ += n;
    auto now = std::chrono::steady_clock::now();
    if (!tty_ || now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    Draw();
  }
  void Finish() {
    if (tty_) {
      Draw();
      std::fputc('\n', stderr);
    }
  }

 private:
  void Draw() {
    double f = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
    int bars = static_cast<int>(f * 30);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::fprintf(stderr, "\r%s[%-30s] %5.1f%% %8.1f MB %7.1f MB/s", label_.c_str(),
                 std::string(bars, '#').c_str(), f * 100, static_cast<double>(done_) / 1e6,
                 secs > 0 ? static_cast<double>(done_) / 1e6 / secs : 0.0);
  }
  uint64_t total_, done_ = 0;
  std::string label_;
  bool tty_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_;
};

}  // namespace lazysnap::cli
