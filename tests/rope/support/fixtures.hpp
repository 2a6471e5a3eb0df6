// Reader for tests/fixtures/rope: rope_fixtures.json (a manifest: case metadata and, per array,
// dtype/shape/offset) and rope_fixtures.bin (raw little-endian arrays), and the same pair for
// rope_far_fixtures (cos/sin at large positions), written by
// scripts/fixtures/gen_rope_fixtures.py. A small JSON parser covers what the manifest uses.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace qwen3vl::testing {

struct Json {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = Kind::kNull;
  bool boolean = false;
  double number = 0.0;
  std::string text;
  std::vector<Json> items;
  std::map<std::string, Json> fields;

  bool has(const std::string& key) const { return fields.count(key) > 0; }
  const Json& operator[](const std::string& key) const {
    auto it = fields.find(key);
    if (it == fields.end()) throw std::runtime_error("json: no key '" + key + "'");
    return it->second;
  }
  const Json& operator[](size_t i) const { return items.at(i); }
  bool is_null() const { return kind == Kind::kNull; }

  static Json parse(const std::string& s) {
    size_t at = 0;
    Json v = parse_value(s, at);
    skip(s, at);
    if (at != s.size()) throw std::runtime_error("json: trailing characters");
    return v;
  }

 private:
  static void skip(const std::string& s, size_t& at) {
    while (at < s.size() && std::strchr(" \t\r\n", s[at])) ++at;
  }
  static void expect(const std::string& s, size_t& at, char c) {
    skip(s, at);
    if (at >= s.size() || s[at] != c) throw std::runtime_error(std::string("json: expected ") + c);
    ++at;
  }
  static std::string parse_string(const std::string& s, size_t& at) {
    expect(s, at, '"');
    std::string out;
    while (at < s.size() && s[at] != '"') {
      if (s[at] == '\\') {
        ++at;
        if (at >= s.size()) break;
        const char e = s[at];
        out += e == 'n' ? '\n' : e == 't' ? '\t' : e;  // the manifest holds no \u escapes
      } else {
        out += s[at];
      }
      ++at;
    }
    expect(s, at, '"');
    return out;
  }
  static Json parse_value(const std::string& s, size_t& at) {
    skip(s, at);
    Json v;
    if (at >= s.size()) throw std::runtime_error("json: unexpected end");
    const char c = s[at];
    if (c == '{') {
      v.kind = Kind::kObject;
      ++at;
      skip(s, at);
      if (s[at] == '}') return ++at, v;
      for (;;) {
        std::string key = parse_string(s, at);
        expect(s, at, ':');
        v.fields[key] = parse_value(s, at);
        skip(s, at);
        if (s[at] == ',') {
          ++at;
          continue;
        }
        expect(s, at, '}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Kind::kArray;
      ++at;
      skip(s, at);
      if (s[at] == ']') return ++at, v;
      for (;;) {
        v.items.push_back(parse_value(s, at));
        skip(s, at);
        if (s[at] == ',') {
          ++at;
          continue;
        }
        expect(s, at, ']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Kind::kString;
      v.text = parse_string(s, at);
      return v;
    }
    for (const char* word : {"null", "true", "false"})
      if (s.compare(at, std::strlen(word), word) == 0) {
        at += std::strlen(word);
        v.kind = word[0] == 'n' ? Kind::kNull : Kind::kBool;
        v.boolean = word[0] == 't';
        return v;
      }
    char* end = nullptr;
    v.number = std::strtod(s.c_str() + at, &end);
    if (end == s.c_str() + at) throw std::runtime_error("json: bad value at " + std::to_string(at));
    v.kind = Kind::kNumber;
    at = static_cast<size_t>(end - s.c_str());
    return v;
  }
};

// One array of the fixture file, widened: floats (f32 and bf16 as their float values) or ints.
struct FixtureArray {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<float> f;        // f32 / bf16 values
  std::vector<uint16_t> bits;  // bf16 patterns
  std::vector<int32_t> i;      // i32 values
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

class RopeFixtures {
 public:
  // The directory: $QWEN3VL_ROPE_FIXTURES if set, else the compiled-in source path.
  static std::string directory() {
    if (const char* env = std::getenv("QWEN3VL_ROPE_FIXTURES"); env && *env) return env;
    return QWEN3VL_ROPE_FIXTURES_DIR;
  }

  static const RopeFixtures& get() {
    static const RopeFixtures f(directory());
    return f;
  }
  // rope_far_fixtures.*: Qwen3-VL text cos/sin at dense positions up to 262143.
  static const RopeFixtures& far() {
    static const RopeFixtures f(directory(), "rope_far_fixtures");
    return f;
  }

  explicit RopeFixtures(const std::string& dir, const std::string& stem = "rope_fixtures") {
    std::ifstream js(dir + "/" + stem + ".json"), bin(dir + "/" + stem + ".bin", std::ios::binary);
    if (!js || !bin) throw std::runtime_error("rope fixtures " + stem + " not found in " + dir);
    std::stringstream text;
    text << js.rdbuf();
    manifest_ = Json::parse(text.str());
    blob_.assign(std::istreambuf_iterator<char>(bin), std::istreambuf_iterator<char>());
  }

  const Json& manifest() const { return manifest_; }
  const Json& meta(const std::string& c) const { return manifest_["cases"][c]; }
  bool has(const std::string& name) const { return manifest_["arrays"].has(name); }

  FixtureArray array(const std::string& name) const {
    const Json& a = manifest_["arrays"][name];
    FixtureArray out;
    out.dtype = a["dtype"].text;
    for (const Json& d : a["shape"].items) out.shape.push_back(static_cast<int64_t>(d.number));
    const size_t n = static_cast<size_t>(out.numel()),
                 offset = static_cast<size_t>(a["offset"].number);
    const size_t width = out.dtype == "bf16" ? 2 : 4;
    if (offset + n * width > blob_.size())
      throw std::runtime_error("rope fixture out of range: " + name);
    if (n == 0) return out;  // an empty array (memcpy must not see its null data pointer)
    const char* p = blob_.data() + offset;
    if (out.dtype == "i32") {
      out.i.resize(n);
      std::memcpy(out.i.data(), p, n * 4);
    } else if (out.dtype == "f32") {
      out.f.resize(n);
      std::memcpy(out.f.data(), p, n * 4);
    } else {
      out.bits.resize(n);
      std::memcpy(out.bits.data(), p, n * 2);
      out.f.resize(n);
      for (size_t k = 0; k < n; ++k) {
        const uint32_t u = static_cast<uint32_t>(out.bits[k]) << 16;
        std::memcpy(&out.f[k], &u, 4);
      }
    }
    return out;
  }

 private:
  Json manifest_;
  std::vector<char> blob_;
};

}  // namespace qwen3vl::testing
