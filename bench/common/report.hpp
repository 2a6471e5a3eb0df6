// The one report writer of qwen3vl-attn-bench's routines: a routine fills rows of named values,
// and write() saves them as JSON (with the machine, the commit and the date) or CSV, to the files
// --json / --csv name. Each routine keeps printing its own human-readable table to stdout.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "qwen3vl/core/status.hpp"

namespace qwen3vl::bench {

// One JSON value: null, a bool, a number or a string. A non-finite number, and a figure that
// was not measured (the routines use a negative time for those, see Report::measured), is null.
class Value {
 public:
  Value() = default;                                   // null
  Value(bool b) : kind_(kBool), number_(b ? 1 : 0) {}  // NOLINT: implicit on purpose
  Value(int v) : kind_(kInt), integer_(v) {}           // NOLINT
  Value(long v) : kind_(kInt), integer_(v) {}          // NOLINT
  Value(long long v) : kind_(kInt), integer_(v) {}     // NOLINT
  Value(unsigned long v) : kind_(kInt), integer_(static_cast<int64_t>(v)) {}  // NOLINT
  Value(double v) : kind_(kNumber), number_(v) {}                             // NOLINT
  Value(const char* s) : kind_(kString), text_(s) {}                          // NOLINT
  Value(std::string s) : kind_(kString), text_(std::move(s)) {}               // NOLINT
  std::string json() const;
  std::string csv() const;

 private:
  enum Kind { kNull, kBool, kInt, kNumber, kString } kind_ = kNull;
  int64_t integer_ = 0;
  double number_ = 0;
  std::string text_;
};

// A figure that is >= 0 when measured; null otherwise.
inline Value measured(double v) { return v >= 0 ? Value(v) : Value(); }

using ReportRow = std::vector<std::pair<std::string, Value>>;

// What the report says about where it ran: CPU model, cores and the ISA the kernels use; each
// CUDA device's name, architecture and the driver (when the build has CUDA).
struct MachineInfo {
  std::string cpu_model, cpu_isa;
  int physical_cores = 0, logical_cores = 0;
  struct Gpu {
    std::string name, arch;
  };
  std::vector<Gpu> gpus;
  std::string gpu_driver;   // the kernel module's version (/proc/driver/nvidia/version), or ""
  std::string cuda_driver;  // the CUDA version the driver supports, e.g. "13.0", or ""
  static MachineInfo current();
};

class Report {
 public:
  Report(std::string routine, std::vector<std::string> args)
      : routine_(std::move(routine)), args_(std::move(args)) {}
  // A value about the whole run (e.g. the sgemm anchor), written next to the machine.
  void context(const std::string& key, Value value) {
    context_.emplace_back(key, std::move(value));
  }
  void add(ReportRow row) { rows_.push_back(std::move(row)); }
  const std::vector<ReportRow>& rows() const { return rows_; }
  // Writes to the paths given (empty: nothing; "-": stdout).
  Status write(const std::string& json_path, const std::string& csv_path) const;

  std::string json() const;
  std::string csv() const;  // a header of every key seen, then one line a row

 private:
  std::string routine_;
  std::vector<std::string> args_;
  ReportRow context_;
  std::vector<ReportRow> rows_;
};

}  // namespace qwen3vl::bench
