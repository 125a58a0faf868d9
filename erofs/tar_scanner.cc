#include "erofs/tar_scanner.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "common/error.h"

namespace lazysnap::erofs {
namespace {

std::string Field(const uint8_t* p, size_t n) {
  size_t len = strnlen(reinterpret_cast<const char*>(p), n);
  return std::string(reinterpret_cast<const char*>(p), len);
}

bool HeaderOnlyType(char t) {
  return t == '1' || t == '2' || t == '3' || t == '4' || t == '5' || t == '6';
}

}  // namespace

bool ParseTarNumber(const uint8_t* p, size_t n, uint64_t* out) {
  if (p[0] & 0x80) {
    if (p[0] & 0x40) return false;  // negative
    uint64_t v = p[0] & 0x3f;
    for (size_t i = 1; i < n; ++i) {
      if (v >> 55) return false;
      v = (v << 8) | p[i];
    }
    *out = v;
    return true;
  }
  size_t i = 0;
  while (i < n && p[i] == ' ') ++i;
  uint64_t v = 0;
  for (; i < n && p[i] >= '0' && p[i] <= '7'; ++i) {
    if (v >> 60) return false;
    v = v * 8 + (p[i] - '0');
  }
  for (; i < n; ++i)
    if (p[i] != ' ' && p[i] != 0) return false;
  *out = v;  // an all-blank field reads as 0, as GNU tar does
  return true;
}

bool EscapesRoot(const std::string& path) {
  std::string_view rest(path);
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view comp = rest.substr(0, slash);
    if (comp == "..") return true;
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return false;
}

std::string NormalizePath(const std::string& path) {
  std::string out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    std::string_view comp(path.data() + pos, slash - pos);
    if (!comp.empty() && comp != ".") {
      if (!out.empty()) out += '/';
      out += comp;
    }
    pos = slash + 1;
  }
  return out;
}

void TarScanner::Fail(const std::string& what) const {
  throw Error(ErrorCode::kInvalidArgument,
              "invalid tar layer at offset " + std::to_string(header_offset_) + ": " + what);
}

void TarScanner::Feed(const uint8_t* data, size_t len) {
  while (len > 0) {
    switch (state_) {
      case State::kEnd:
        offset_ += len;  // trailing padding after the end marker: ignored, like tar does
        return;
      case State::kHeader: {
        size_t n = std::min(len, sizeof(hdr_) - hdr_fill_);
        memcpy(hdr_ + hdr_fill_, data, n);
        hdr_fill_ += n;
        data += n;
        len -= n;
        offset_ += n;
        if (hdr_fill_ == sizeof(hdr_)) {
          hdr_fill_ = 0;
          header_offset_ = offset_ - sizeof(hdr_);
          OnHeader();
        }
        break;
      }
      case State::kData: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(len, remaining_));
        remaining_ -= n;
        data_left_ -= std::min<uint64_t>(data_left_, n);
        data += n;
        len -= n;
        offset_ += n;
        if (remaining_ == 0) state_ = State::kHeader;
        break;
      }
      case State::kMeta: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(len, remaining_));
        size_t keep = static_cast<size_t>(std::min<uint64_t>(n, data_left_));
        meta_.append(reinterpret_cast<const char*>(data), keep);
        data_left_ -= keep;
        remaining_ -= n;
        data += n;
        len -= n;
        offset_ += n;
        if (remaining_ == 0) {
          state_ = State::kHeader;
          OnMetaRecord();
        }
        break;
      }
    }
  }
}

void TarScanner::OnHeader() {
  static const uint8_t kZero[512] = {};
  if (memcmp(hdr_, kZero, sizeof(hdr_)) == 0) {
    state_ = State::kEnd;
    end_offset_ = offset_;
    return;
  }
  uint64_t want = 0;
  if (!ParseTarNumber(hdr_ + 148, 8, &want)) Fail("unparsable header checksum");
  uint64_t sum = 0;
  int64_t ssum = 0;
  for (size_t i = 0; i < sizeof(hdr_); ++i) {
    uint8_t b = (i >= 148 && i < 156) ? ' ' : hdr_[i];
    sum += b;
    ssum += static_cast<int8_t>(b);
  }
  if (want != sum && static_cast<int64_t>(want) != ssum)
    Fail("header checksum mismatch (not a tar stream, or corrupt)");
  char type = static_cast<char>(hdr_[156]);
  uint64_t size = 0;
  if (!ParseTarNumber(hdr_ + 124, 12, &size)) Fail("unparsable size field");
  bool ustar = memcmp(hdr_ + 257, "ustar", 5) == 0;

  if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
    // A PAX size= is for the next entry, but mkfs.erofs applies it to the next header of any
    // type: a metadata header after one would be read differently there than here, so bytes
    // this scanner never validated would reach the image. No tar writer emits that sequence.
    if (next_size_set_)
      Fail("metadata record after a PAX size record (which header the size is for is ambiguous)");
    if (size > kMaxMetaRecord)
      Fail("metadata record of " + std::to_string(size) + " bytes exceeds the limit");
    meta_type_ = type;
    meta_.clear();
    data_left_ = size;
    remaining_ = (size + 511) & ~uint64_t{511};
    state_ = remaining_ ? State::kMeta : State::kHeader;
    if (!remaining_) OnMetaRecord();
    return;
  }

  std::string name = next_path_;
  if (name.empty()) {
    name = Field(hdr_, 100);
    if (ustar) {
      std::string prefix = Field(hdr_ + 345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
  }
  std::string link = next_link_.empty() ? Field(hdr_ + 157, 100) : next_link_;
  if (next_size_set_) size = next_size_;
  next_path_.clear();
  next_link_.clear();
  next_size_set_ = false;
  current_name_ = name;

  if (name.empty()) Fail("entry with an empty name");
  if (EscapesRoot(name)) Fail("entry '" + name + "' escapes the layer root");
  if (type == '1' && EscapesRoot(link))
    Fail("hardlink '" + name + "' -> '" + link + "' escapes the layer root");
  if (size > kMaxEntrySize)
    Fail("entry '" + name + "' has an absurd size (" + std::to_string(size) + " bytes)");
  if (HeaderOnlyType(type) && size != 0)
    Fail("entry '" + name + "' of type '" + std::string(1, type) + "' carries data");
  if (type == '5' || ((type == '0' || type == 0) && name.back() == '/'))
    explicit_dirs_.insert(NormalizePath(name));
  ++entries_;
  data_left_ = size;
  remaining_ = (size + 511) & ~uint64_t{511};
  state_ = remaining_ ? State::kData : State::kHeader;
}

void TarScanner::OnMetaRecord() {
  if (meta_type_ == 'L' || meta_type_ == 'K') {
    std::string v(meta_.c_str());  // NUL-terminated inside the record
    if (v.empty()) Fail("empty GNU long name record");
    (meta_type_ == 'L' ? next_path_ : next_link_) = v;
    return;
  }
  // PAX records: "<len> <key>=<value>\n", len counting the whole record.
  std::string_view rest(meta_);
  while (!rest.empty()) {
    size_t sp = rest.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp > 20) Fail("malformed PAX record length");
    uint64_t len = 0;
    for (size_t i = 0; i < sp; ++i) {
      if (rest[i] < '0' || rest[i] > '9') Fail("malformed PAX record length");
      len = len * 10 + (rest[i] - '0');
    }
    if (len <= sp + 1 || len > rest.size() || rest[len - 1] != '\n') Fail("malformed PAX record");
    std::string_view rec = rest.substr(sp + 1, len - sp - 2);
    rest.remove_prefix(len);
    size_t eq = rec.find('=');
    if (eq == std::string_view::npos) Fail("PAX record without '='");
    std::string_view key = rec.substr(0, eq), value = rec.substr(eq + 1);
    if (meta_type_ != 'x') continue;  // global records: nothing we validate
    if (key == "path" || key == "linkpath") {
      if (value.find('\0') != std::string_view::npos) Fail("PAX path with a NUL byte");
      (key == "path" ? next_path_ : next_link_) = std::string(value);
    } else if (key == "size") {
      uint64_t v = 0;
      if (value.empty() || value.size() > 19) Fail("malformed PAX size");
      for (char c : value) {
        if (c < '0' || c > '9') Fail("malformed PAX size");
        v = v * 10 + (c - '0');
      }
      next_size_set_ = true;
      next_size_ = v;
    }
  }
}

void TarScanner::Finish() const {
  if (state_ == State::kEnd) return;
  if (state_ == State::kHeader && hdr_fill_ == 0) return;
  if (state_ == State::kHeader)
    throw Error(ErrorCode::kDataLoss, "tar layer is truncated inside a header at offset " +
                                          std::to_string(offset_ - hdr_fill_));
  throw Error(ErrorCode::kDataLoss, "tar layer is truncated: entry '" + current_name_ + "' needs " +
                                        std::to_string(remaining_) + " more bytes");
}

}  // namespace lazysnap::erofs
