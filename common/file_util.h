// Small file helpers with errors that name the path.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace lazysnap {

std::string ReadFile(const std::string& path);
// Writes to a temp file beside `path`, fsyncs it, renames it over `path` and fsyncs the directory:
// readers see the old or the new contents, never a torn file.
void WriteFileAtomic(const std::string& path, std::string_view data, unsigned mode = 0644);
void MakeDirs(const std::string& path, unsigned mode = 0755);
bool PathExists(const std::string& path);
// Writes a sysfs/procfs attribute in place (they cannot be replaced by a rename, unlike files).
// Returns false, with errno set, when it cannot be opened or written.
bool WriteKernelAttribute(const std::string& path, std::string_view value);

// Removes the file `path` (if it is there) when it goes out of scope: a temporary that must not
// outlive the step that needed it, whether that step succeeded or threw.
class UnlinkOnExit {
 public:
  explicit UnlinkOnExit(std::string path) : path_(std::move(path)) {}
  ~UnlinkOnExit();
  UnlinkOnExit(const UnlinkOnExit&) = delete;
  UnlinkOnExit& operator=(const UnlinkOnExit&) = delete;

 private:
  std::string path_;
};

}  // namespace lazysnap
