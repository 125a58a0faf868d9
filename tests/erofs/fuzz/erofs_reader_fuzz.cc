// libFuzzer entry for the userspace EROFS reader: the input is a metadata image (and, past a
// split point chosen by byte 0, a blob device). Open it and walk everything the API offers; every
// failure must be a lazysnap::Error, never a crash, hang or huge allocation.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "erofs/reader.h"

namespace {

using lazysnap::erofs::Reader;

void Walk(const Reader& r, uint64_t ino, int depth, int* budget) {
  if (depth > 8 || --*budget < 0) return;
  try {
    auto a = r.GetAttr(ino);
    r.ListXattrs(ino);
    r.GetXattr(ino, "user.x");
    r.GetXattr(ino, "trusted.overlay.opaque");
    r.MapRange(ino, 0, uint64_t{1} << 40);
    r.MapRange(ino, a.size / 2, 4097);
    r.Read(ino, 0, 65536);
    if ((a.mode & 0170000) == 0120000) r.ReadLink(ino);
    if ((a.mode & 0170000) == 0040000) {
      r.LookupChild(ino, "zz");
      for (const auto& e : r.ReadDir(ino)) Walk(r, e.ino, depth + 1, budget);
    }
  } catch (const lazysnap::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string in(reinterpret_cast<const char*>(data + 1), size - 1);
  // Byte 0 picks where the blob device starts (in 512-byte units from the end; 0 = no blob).
  size_t split = in.size();
  if (data[0] && size_t{data[0]} * 512 <= in.size()) split = in.size() - size_t{data[0]} * 512;
  try {
    std::vector<std::shared_ptr<const lazysnap::erofs::BlockSource>> devs;
    if (split < in.size())
      devs.push_back(std::make_shared<lazysnap::erofs::MemoryBlockSource>(in.substr(split)));
    auto r = Reader::Open(std::make_shared<lazysnap::erofs::MemoryBlockSource>(in.substr(0, split)),
                          devs);
    int budget = 2000;
    Walk(*r, r->root_ino(), 0, &budget);
    try {
      r->Lookup("/a/b/../c");
    } catch (const lazysnap::Error&) {
    }
  } catch (const lazysnap::Error&) {
  }
  return 0;
}
