// What the block-store tests share: seeded payloads, scratch directories on the real disk (under
// the build tree) and on tmpfs, and raw access to a slot's bytes in the file.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "qwen3vl/lifecycle/block_store.hpp"

namespace qwen3vl::lifecycle::testing {

inline std::vector<unsigned char> payload(size_t bytes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<unsigned char> v(bytes);
  for (auto& b : v) b = static_cast<unsigned char>(rng());
  return v;
}

constexpr long kTmpfsMagic = 0x01021994;

inline bool is_tmpfs(const std::string& dir) {
  struct statfs s {};
  return ::statfs(dir.c_str(), &s) == 0 && s.f_type == kTmpfsMagic;
}

// Where the test files go. The disk one lives in the build tree (a real, O_DIRECT-capable file
// system); the tmpfs one is /dev/shm when that is tmpfs, else empty (those cases skip).
inline std::string disk_root() { return QWEN3VL_TEST_DISK_DIR; }
inline std::string tmpfs_root() { return is_tmpfs("/dev/shm") ? "/dev/shm" : std::string(); }

// A fresh directory under root, removed with its files at scope end.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& root) {
    std::filesystem::create_directories(root);
    std::string templ = root + "/qwen3vl-store-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) != nullptr) path_ = buf.data();
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Raw bytes of the file, bypassing the store (a crash's leftovers, a flipped bit).
inline std::vector<unsigned char> read_raw(const std::string& path, uint64_t offset, size_t n) {
  std::vector<unsigned char> v(n);
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    if (::pread(fd, v.data(), n, static_cast<off_t>(offset)) != static_cast<ssize_t>(n)) v.clear();
    ::close(fd);
  } else {
    v.clear();
  }
  return v;
}
inline bool write_raw(const std::string& path, uint64_t offset, const void* data, size_t n) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  if (fd < 0) return false;
  const bool ok = ::pwrite(fd, data, n, static_cast<off_t>(offset)) == static_cast<ssize_t>(n);
  ::fsync(fd);
  ::close(fd);
  return ok;
}
inline bool flip_byte(const std::string& path, uint64_t offset) {
  std::vector<unsigned char> b = read_raw(path, offset, 1);
  if (b.empty()) return false;
  b[0] ^= 0x5A;
  return write_raw(path, offset, b.data(), 1);
}

}  // namespace qwen3vl::lifecycle::testing
