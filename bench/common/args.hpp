// The one option parser of qwen3vl-attn-bench's routines: each routine declares its flags (name,
// target, allowed values, help), then parse() reads `--name value` (or `--name=value`); a switch
// (`--causal`) takes no value. Bad input is a Status naming the flag, its value and what is
// allowed. Every routine also gets --json FILE, --csv FILE (`-`: stdout) and --help.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qwen3vl/core/dtype.hpp"
#include "qwen3vl/core/status.hpp"

namespace qwen3vl::bench {

class ArgParser {
 public:
  // `routine` names it in messages; `about` says what it measures and how (printed by --help).
  ArgParser(std::string routine, std::string about);

  void add_int(const char* name, int64_t* target, int64_t lo, int64_t hi, const char* help);
  void add_int(const char* name, int* target, int64_t lo, int64_t hi, const char* help);
  void add_number(const char* name, double* target, double lo, double hi, const char* help);
  void add_choice(const char* name, std::string* target, std::vector<std::string> allowed,
                  const char* help);
  void add_dtype(const char* name, DType* target, std::vector<DType> allowed, const char* help);
  // A comma-separated list of integers in [lo, hi] (at least one).
  void add_int_list(const char* name, std::vector<int64_t>* target, int64_t lo, int64_t hi,
                    const char* help);
  // A comma-separated list of words, each one of `allowed` (empty `allowed`: any word).
  void add_word_list(const char* name, std::vector<std::string>* target,
                     std::vector<std::string> allowed, const char* help);
  void add_string(const char* name, std::string* target, const char* placeholder, const char* help);
  void add_switch(const char* name, bool* target, const char* help);
  // Any other value: `apply` checks and stores it, returning a Status that names the flag.
  void add_custom(const char* name, const char* placeholder, const char* help,
                  std::function<Status(const std::string& flag, const std::string& value)> apply);

  // Reads the arguments after the routine's name; the first error stops it.
  Status parse(const std::vector<std::string>& args);
  bool help_requested() const { return help_; }
  bool was_set(const std::string& name) const;
  const std::string& json_path() const { return json_; }
  const std::string& csv_path() const { return csv_; }
  const std::string& routine() const { return routine_; }
  std::string help() const;

 private:
  struct Flag {
    std::string name, placeholder, help, default_text;
    bool takes_value = true;
    std::function<Status(const std::string& flag, const std::string& value)> apply;
  };
  void add(Flag flag);

  std::string routine_, about_;
  std::vector<Flag> flags_;
  std::vector<std::string> set_;
  std::string json_, csv_;
  bool help_ = false;
};

// Reads `text` as a decimal integer in [lo, hi] into *out; otherwise a Status naming `flag`, the
// text and the range (what every integer flag answers).
Status parse_integer(const std::string& flag, const std::string& text, int64_t lo, int64_t hi,
                     int64_t* out);

// Splits "a,b,c" (empty items dropped).
std::vector<std::string> split_commas(const std::string& text);

}  // namespace qwen3vl::bench
