// What a rejected call must show, for the bad-input corpus and the overflow guards: a typed error
// whose message names the argument (as a token: "q" is not found in "q_positions" nor in "seq"),
// and, for the corpus, every buffer it was given byte for byte unchanged.
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <string>
#include <vector>

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/core/tensor.hpp"

namespace qwen3vl::testing {

inline bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Does `message` hold `name` with a name boundary on each side (where name starts or ends with a
// name character): "q" matches "q = ...", "q.data", "q[1]", "params.q" but not "seq_q" or "qk".
inline bool names_argument(const std::string& message, const std::string& name) {
  if (name.empty()) return false;
  for (size_t at = message.find(name); at != std::string::npos; at = message.find(name, at + 1)) {
    const size_t end = at + name.size();
    const bool starts = !is_name_char(name.front()) || at == 0 || !is_name_char(message[at - 1]);
    const bool ends =
        !is_name_char(name.back()) || end == message.size() || !is_name_char(message[end]);
    if (starts && ends) return true;
  }
  return false;
}

// A failed call of the expected code whose message names `mentions`.
inline void expect_error(const Status& s, StatusCode code, const std::string& mentions) {
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_TRUE(names_argument(s.message(), mentions))
      << "message '" << s.message() << "' should name '" << mentions << "'";
}

// Byte snapshots of buffers, compared after a rejected call.
class Snapshot {
 public:
  void add(const std::string& name, const void* data, size_t bytes) {
    if (data == nullptr || bytes == 0) return;
    const char* p = static_cast<const char*>(data);
    entries_.push_back({name, p, std::vector<char>(p, p + bytes)});
  }
  void add(const std::string& name, const Tensor& t) {
    add(name, t.view().data, static_cast<size_t>(t.bytes()));
  }
  // The first buffer that changed, or "" when none did.
  std::string changed() const {
    for (const Entry& e : entries_)
      if (std::memcmp(e.where, e.bytes.data(), e.bytes.size()) != 0) return e.name;
    return "";
  }

 private:
  struct Entry {
    std::string name;
    const char* where;
    std::vector<char> bytes;
  };
  std::vector<Entry> entries_;
};

// One rejected call: a typed error naming `mentions`, every snapshotted buffer unchanged.
inline void expect_rejected(const Status& s, const std::string& mentions, const Snapshot& snap,
                            const std::string& label) {
  EXPECT_FALSE(s.ok()) << label << ": accepted";
  EXPECT_NE(s.code(), StatusCode::kInternal) << label << ": " << s.to_string();
  EXPECT_TRUE(names_argument(s.message(), mentions))
      << label << ": message '" << s.message() << "' should name '" << mentions << "'";
  const std::string changed = snap.changed();
  EXPECT_EQ(changed, "") << label << ": " << changed << " was modified by a rejected call";
}

}  // namespace qwen3vl::testing
