// Structured logs on stderr, one line per event: `time level msg key=value ...`.
// A Logger is a value passed to whoever logs; there is no process-wide logger.
#pragma once

#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace lazysnap {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug", "info", "warn", "error"; throws Error(kInvalidArgument) otherwise.
LogLevel ParseLogLevel(std::string_view name);

using LogField = std::pair<std::string_view, std::string>;

class Logger {
 public:
  explicit Logger(LogLevel level = LogLevel::kInfo, int fd = 2) : level_(level), fd_(fd) {}

  void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {}) const;
  void Debug(std::string_view msg, std::initializer_list<LogField> f = {}) const {
    Log(LogLevel::kDebug, msg, f);
  }
  void Info(std::string_view msg, std::initializer_list<LogField> f = {}) const {
    Log(LogLevel::kInfo, msg, f);
  }
  void Warn(std::string_view msg, std::initializer_list<LogField> f = {}) const {
    Log(LogLevel::kWarn, msg, f);
  }
  void Error(std::string_view msg, std::initializer_list<LogField> f = {}) const {
    Log(LogLevel::kError, msg, f);
  }

  LogLevel level() const { return level_; }

 private:
  LogLevel level_;
  int fd_;
  mutable std::mutex mu_;  // one writer at a time keeps lines whole
};

}  // namespace lazysnap
