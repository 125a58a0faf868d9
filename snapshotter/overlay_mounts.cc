#include "snapshotter/overlay_mounts.h"

namespace lazysnap::snapshotter {

std::vector<Mount> NativeMounts(Kind kind, const std::string& fs_dir, const std::string& work_dir,
                                const std::vector<std::string>& parent_fs_dirs,
                                const OverlayOptions& opts) {
  if (parent_fs_dirs.empty()) {
    return {Mount{"bind", fs_dir, "", {kind == Kind::kView ? "ro" : "rw", "rbind"}}};
  }
  if (kind != Kind::kActive && parent_fs_dirs.size() == 1) {
    return {Mount{"bind", parent_fs_dirs.front(), "", {"ro", "rbind"}}};
  }
  std::vector<std::string> options;
  if (opts.index_off) options.push_back("index=off");
  if (opts.xino_on) options.push_back("xino=on");
  if (kind == Kind::kActive) {
    options.push_back("workdir=" + work_dir);
    options.push_back("upperdir=" + fs_dir);
  }
  std::string lower = "lowerdir=";
  for (size_t i = 0; i < parent_fs_dirs.size(); ++i) {
    if (i) lower.push_back(':');
    lower += parent_fs_dirs[i];
  }
  options.push_back(lower);
  return {Mount{"overlay", "overlay", "", options}};
}

}  // namespace lazysnap::snapshotter
