#include "tests/erofs/tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <set>

#include "common/error.h"
#include "common/file_util.h"
#include "common/process.h"
#include "common/sha256.h"

namespace lazysnap::erofs::testing {
namespace {

std::map<std::string, std::string> Xattrs(const std::string& path) {
  std::map<std::string, std::string> out;
  ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
  if (n <= 0) return out;
  std::string names(static_cast<size_t>(n), '\0');
  n = ::llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) ThrowErrno("llistxattr " + path);
  names.resize(static_cast<size_t>(n));
  for (size_t pos = 0; pos < names.size();) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    ssize_t vn = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (vn < 0) ThrowErrno("lgetxattr " + path + " " + name);
    std::string v(static_cast<size_t>(vn), '\0');
    vn = ::lgetxattr(path.c_str(), name.c_str(), v.data(), v.size());
    v.resize(static_cast<size_t>(vn));
    out[name] = v;
  }
  return out;
}

void Walk(const std::string& root, const std::string& rel, std::map<std::string, Node>* out) {
  std::string path = rel.empty() ? root : root + "/" + rel;
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) ThrowErrno("lstat " + path);
  Node n;
  n.mode = st.st_mode;
  n.uid = st.st_uid;
  n.gid = st.st_gid;
  n.size = S_ISREG(st.st_mode) || S_ISLNK(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
  n.mtime = st.st_mtim.tv_sec;
  n.mtime_nsec = st.st_mtim.tv_nsec;
  n.rdev = S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? st.st_rdev : 0;
  n.ino = st.st_ino;
  n.nlink = S_ISDIR(st.st_mode) ? 0 : st.st_nlink;  // dir link counts differ by design
  if (S_ISREG(st.st_mode)) {
    n.content = Sha256Hex(ReadFile(path));
  } else if (S_ISLNK(st.st_mode)) {
    std::string t(4096, '\0');
    ssize_t len = ::readlink(path.c_str(), t.data(), t.size());
    if (len < 0) ThrowErrno("readlink " + path);
    t.resize(static_cast<size_t>(len));
    n.content = t;
  }
  n.xattrs = Xattrs(path);
  (*out)[rel] = n;
  if (!S_ISDIR(st.st_mode)) return;
  DIR* d = ::opendir(path.c_str());
  if (!d) ThrowErrno("opendir " + path);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  for (const auto& name : names) Walk(root, rel.empty() ? name : rel + "/" + name, out);
}

std::string Oct(uint32_t v) {
  char b[16];
  snprintf(b, sizeof(b), "0%o", v);
  return b;
}

}  // namespace

std::map<std::string, Node> Snapshot(const std::string& root) {
  std::map<std::string, Node> out;
  Walk(root, "", &out);
  return out;
}

std::vector<std::string> Diff(const std::map<std::string, Node>& want,
                              const std::map<std::string, Node>& got, bool compare_root) {
  std::vector<std::string> diffs;
  auto add = [&](const std::string& path, const std::string& what) {
    if (diffs.size() < 50) diffs.push_back("'" + path + "': " + what);
  };
  for (const auto& [path, w] : want) {
    auto it = got.find(path);
    if (it == got.end()) {
      add(path, "missing");
      continue;
    }
    if (path.empty() && !compare_root) continue;
    const Node& g = it->second;
    if (w.mode != g.mode) add(path, "mode " + Oct(w.mode) + " vs " + Oct(g.mode));
    if (w.uid != g.uid || w.gid != g.gid)
      add(path, "owner " + std::to_string(w.uid) + ":" + std::to_string(w.gid) + " vs " +
                    std::to_string(g.uid) + ":" + std::to_string(g.gid));
    if (w.size != g.size)
      add(path, "size " + std::to_string(w.size) + " vs " + std::to_string(g.size));
    if (!S_ISLNK(w.mode) && (w.mtime != g.mtime || w.mtime_nsec != g.mtime_nsec))
      add(path, "mtime " + std::to_string(w.mtime) + "." + std::to_string(w.mtime_nsec) + " vs " +
                    std::to_string(g.mtime) + "." + std::to_string(g.mtime_nsec));
    if (w.rdev != g.rdev) add(path, "rdev differs");
    if (w.nlink != g.nlink)
      add(path, "nlink " + std::to_string(w.nlink) + " vs " + std::to_string(g.nlink));
    if (w.content != g.content) add(path, "content differs");
    if (w.xattrs != g.xattrs) add(path, "xattrs differ");
  }
  for (const auto& [path, g] : got)
    if (!want.count(path)) add(path, "unexpected");
  // Hardlink groups.
  auto groups = [](const std::map<std::string, Node>& t) {
    std::map<uint64_t, std::set<std::string>> by_ino;
    for (const auto& [p, n] : t)
      if (!S_ISDIR(n.mode)) by_ino[n.ino].insert(p);
    std::set<std::set<std::string>> out;
    for (auto& [ino, paths] : by_ino)
      if (paths.size() > 1) out.insert(paths);
    return out;
  };
  if (groups(want) != groups(got)) add("", "hardlink groups differ");
  return diffs;
}

Mount::Mount(const std::string& source, const std::string& target, const std::string& fstype,
             const std::string& data, unsigned long flags)
    : target_(target) {
  if (::mount(source.c_str(), target.c_str(), fstype.c_str(), flags | MS_RDONLY,
              data.empty() ? nullptr : data.c_str()) != 0)
    ThrowErrno("mount " + fstype + " " + source + " on " + target + " (" + data + ")");
}

Mount::~Mount() {
  ::umount2(target_.c_str(), MNT_DETACH);
}

std::string Sh(const std::string& cmd) {
  return RunCommandOrThrow({"/bin/sh", "-c", cmd});
}

}  // namespace lazysnap::erofs::testing
