#include "erofs/tar_root_fix.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "erofs/tar_scanner.h"

namespace lazysnap::erofs {
namespace {

constexpr size_t kBlock = 512;
// ustar header fields (offset, length).
constexpr size_t kNameLen = 100, kSizeOff = 124, kSizeLen = 12, kChksumOff = 148, kChksumLen = 8,
                 kTypeOff = 156, kMagicOff = 257, kPrefixOff = 345, kPrefixLen = 155;

uint64_t Padded(uint64_t size) {
  return (size + kBlock - 1) & ~uint64_t{kBlock - 1};
}

// Sum of the header bytes with the checksum field read as spaces; unsigned and (for old writers)
// signed, as TarScanner accepts either.
void HeaderSums(const uint8_t* h, uint64_t* sum, int64_t* ssum) {
  *sum = 0;
  *ssum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    uint8_t b = (i >= kChksumOff && i < kChksumOff + kChksumLen) ? ' ' : h[i];
    *sum += b;
    *ssum += static_cast<int8_t>(b);
  }
}

}  // namespace

bool IsTarRootPath(std::string_view path) {
  if (path.empty()) return false;
  while (true) {
    size_t slash = path.find('/');
    std::string_view comp = path.substr(0, slash);
    if (!comp.empty() && comp != ".") return false;
    if (slash == std::string_view::npos) return true;
    path.remove_prefix(slash + 1);
  }
}

void TarRootFix::Feed(const uint8_t* data, size_t len) {
  // Bytes from `run` to `data` pass unchanged and go out in one piece; a rewritten header, or one
  // cut across feeds, goes out from hdr_ between runs.
  const uint8_t* run = data;
  auto end_run = [&] {
    if (data > run) out_(run, static_cast<size_t>(data - run));
  };
  while (len > 0) {
    switch (state_) {
      case State::kPass:
        data += len;
        len = 0;
        break;
      case State::kHeader: {
        if (hdr_fill_ == 0 && len >= kBlock) {  // the whole header is here
          memcpy(hdr_, data, kBlock);
          if (OnHeader()) {
            end_run();
            out_(hdr_, kBlock);
            run = data + kBlock;
          }
          data += kBlock;
          len -= kBlock;
          break;
        }
        end_run();
        size_t n = std::min(len, kBlock - hdr_fill_);
        memcpy(hdr_ + hdr_fill_, data, n);
        hdr_fill_ += n;
        data += n;
        len -= n;
        run = data;
        if (hdr_fill_ == kBlock) {
          hdr_fill_ = 0;
          OnHeader();
          out_(hdr_, kBlock);
        }
        break;
      }
      case State::kData:
      case State::kPax: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(len, remaining_));
        if (state_ == State::kPax) {
          size_t keep = static_cast<size_t>(std::min<uint64_t>(n, pax_left_));
          pax_.append(reinterpret_cast<const char*>(data), keep);
          pax_left_ -= keep;
        }
        remaining_ -= n;
        data += n;
        len -= n;
        if (remaining_ == 0) {
          bool pax = state_ == State::kPax;
          state_ = State::kHeader;
          if (pax) OnPaxRecord();
        }
        break;
      }
    }
  }
  end_run();
}

void TarRootFix::Flush() {
  if (state_ == State::kHeader && hdr_fill_ > 0) out_(hdr_, hdr_fill_);
  hdr_fill_ = 0;
  state_ = State::kPass;
}

bool TarRootFix::OnHeader() {
  auto next = [&](State st) {
    state_ = st;
    return false;
  };
  static const uint8_t kZero[kBlock] = {};
  if (memcmp(hdr_, kZero, kBlock) == 0) return next(State::kPass);  // end of archive
  uint64_t want = 0, sum = 0, size = 0;
  int64_t ssum = 0;
  HeaderSums(hdr_, &sum, &ssum);
  if (!ParseTarNumber(hdr_ + kChksumOff, kChksumLen, &want) ||
      (want != sum && static_cast<int64_t>(want) != ssum) ||
      !ParseTarNumber(hdr_ + kSizeOff, kSizeLen, &size))
    return next(State::kPass);
  const char type = static_cast<char>(hdr_[kTypeOff]);

  if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
    if (size > TarScanner::kMaxMetaRecord) return next(State::kPass);
    remaining_ = Padded(size);
    pax_.clear();
    pax_left_ = type == 'x' ? size : 0;
    return next(remaining_ == 0 ? State::kHeader : type == 'x' ? State::kPax : State::kData);
  }

  if (next_size_set_) size = next_size_;
  next_size_set_ = false;
  if (size > TarScanner::kMaxEntrySize) return next(State::kPass);

  // The path mkfs.erofs composes from this header (TarScanner reads it the same way).
  const bool ustar = memcmp(hdr_ + kMagicOff, "ustar", 5) == 0;
  const char* h = reinterpret_cast<const char*>(hdr_);
  std::string_view name(h, strnlen(h, kNameLen));
  std::string_view prefix;
  if (ustar) prefix = std::string_view(h + kPrefixOff, strnlen(h + kPrefixOff, kPrefixLen));
  remaining_ = Padded(size);
  state_ = remaining_ == 0 ? State::kHeader : State::kData;
  std::string path(prefix);
  if (!prefix.empty()) path += '/';
  path += name;
  if (!IsTarRootPath(path) || path == ".") return false;
  memset(hdr_, 0, kNameLen);
  hdr_[0] = '.';
  if (ustar) memset(hdr_ + kPrefixOff, 0, kPrefixLen);
  HeaderSums(hdr_, &sum, &ssum);
  char buf[8];
  snprintf(buf, sizeof(buf), "%06o", static_cast<unsigned>(sum));  // at most 512 * 255 < 8^6
  memcpy(hdr_ + kChksumOff, buf, 6);
  hdr_[kChksumOff + 6] = '\0';
  hdr_[kChksumOff + 7] = ' ';
  ++rewritten_;
  return true;
}

// "<len> <key>=<value>\n" records; only size= matters here (it moves the next entry boundary).
void TarRootFix::OnPaxRecord() {
  auto give_up = [&] { state_ = State::kPass; };
  std::string_view rest(pax_);
  while (!rest.empty()) {
    size_t sp = rest.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp > 20) return give_up();
    uint64_t len = 0;
    for (size_t i = 0; i < sp; ++i) {
      if (rest[i] < '0' || rest[i] > '9') return give_up();
      len = len * 10 + static_cast<uint64_t>(rest[i] - '0');
    }
    if (len <= sp + 1 || len > rest.size() || rest[len - 1] != '\n') return give_up();
    std::string_view rec = rest.substr(sp + 1, len - sp - 2);
    rest.remove_prefix(len);
    size_t eq = rec.find('=');
    if (eq == std::string_view::npos) return give_up();
    if (rec.substr(0, eq) != "size") continue;
    std::string_view value = rec.substr(eq + 1);
    if (value.empty() || value.size() > 19) return give_up();
    uint64_t v = 0;
    for (char c : value) {
      if (c < '0' || c > '9') return give_up();
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    next_size_set_ = true;
    next_size_ = v;
  }
}

}  // namespace lazysnap::erofs
