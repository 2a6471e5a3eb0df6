#include "report.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commit.hpp"
#include "qwen3vl/cpu/isa.hpp"
#include "qwen3vl/hardware/hardware_info.hpp"

#if QWEN3VL_BENCH_CUDA
#include <cuda_runtime.h>
#endif

namespace qwen3vl::bench {
namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string object(const ReportRow& row) {
  std::string out = "{";
  for (size_t i = 0; i < row.size(); ++i)
    out += (i ? ", " : "") + quoted(row[i].first) + ": " + row[i].second.json();
  return out + "}";
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "Kernel Module  580.159.04  ..." -> "580.159.04".
std::string nvidia_module_version() {
  std::ifstream f("/proc/driver/nvidia/version");
  std::string line;
  if (!std::getline(f, line)) return "";
  const size_t at = line.find("Kernel Module");
  if (at == std::string::npos) return "";
  std::istringstream rest(line.substr(at + 13));
  std::string version;
  rest >> version;
  return version;
}

Status write_to(const std::string& path, const std::string& text) {
  if (path.empty()) return Status();
  if (path == "-") {
    std::cout << text << std::flush;
    return Status();
  }
  std::ofstream f(path);
  f << text;
  f.close();
  if (!f)
    return make_error(StatusCode::kInvalidArgument, "report file '", path, "': cannot be written");
  return Status();
}

}  // namespace

std::string Value::json() const {
  switch (kind_) {
    case kNull: return "null";
    case kBool: return number_ != 0 ? "true" : "false";
    case kInt: return std::to_string(integer_);
    case kNumber: {
      if (!std::isfinite(number_)) return "null";
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.7g", number_);
      return buf;
    }
    case kString: return quoted(text_);
  }
  return "null";
}

std::string Value::csv() const {
  if (kind_ == kNull) return "";
  if (kind_ != kString) return json();
  if (text_.find_first_of(",\"\n") == std::string::npos) return text_;
  std::string out = "\"";
  for (char c : text_) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

MachineInfo MachineInfo::current() {
  MachineInfo m;
  const HardwareInfo& hw = HardwareInfo::current();
  m.cpu_model = hw.cpu.brand;
  m.physical_cores = hw.cpu.physical_cores;
  m.logical_cores = hw.cpu.logical_cores;
  CpuIsa isa = CpuIsa::kAuto;
  m.cpu_isa = resolve_cpu_isa(CpuIsa::kAuto, hw.cpu, &isa).ok() ? to_string(isa) : "unknown";
  for (const GpuInfo& g : hw.gpus)
    m.gpus.push_back({g.name, "sm_" + std::to_string(g.sm_major) + std::to_string(g.sm_minor)});
  if (!m.gpus.empty()) {
    m.gpu_driver = nvidia_module_version();
#if QWEN3VL_BENCH_CUDA
    int version = 0;
    if (cudaDriverGetVersion(&version) == cudaSuccess && version > 0)
      m.cuda_driver = std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
#endif
  }
  return m;
}

std::string Report::json() const {
  const MachineInfo m = MachineInfo::current();
  std::ostringstream os;
  os << "{\"routine\": " << quoted(routine_) << ",\n \"args\": [";
  for (size_t i = 0; i < args_.size(); ++i) os << (i ? ", " : "") << quoted(args_[i]);
  os << "],\n \"commit\": " << quoted(bench_commit()) << ", \"date\": " << quoted(utc_now())
     << ",\n \"machine\": {\"cpu\": " << quoted(m.cpu_model)
     << ", \"physical_cores\": " << m.physical_cores << ", \"logical_cores\": " << m.logical_cores
     << ", \"isa\": " << quoted(m.cpu_isa) << ", \"gpus\": [";
  for (size_t i = 0; i < m.gpus.size(); ++i)
    os << (i ? ", " : "") << "{\"name\": " << quoted(m.gpus[i].name)
       << ", \"arch\": " << quoted(m.gpus[i].arch) << ", \"driver\": " << quoted(m.gpu_driver)
       << ", \"cuda_driver\": " << quoted(m.cuda_driver) << "}";
  os << "]},\n \"context\": " << object(context_) << ",\n \"rows\": [";
  for (size_t i = 0; i < rows_.size(); ++i) os << (i ? ",\n  " : "\n  ") << object(rows_[i]);
  os << (rows_.empty() ? "]}\n" : "\n ]}\n");
  return os.str();
}

std::string Report::csv() const {
  std::vector<std::string> keys;
  for (const ReportRow& row : rows_)
    for (const auto& field : row) {
      bool seen = false;
      for (const std::string& k : keys) seen = seen || k == field.first;
      if (!seen) keys.push_back(field.first);
    }
  std::ostringstream os;
  for (size_t i = 0; i < keys.size(); ++i) os << (i ? "," : "") << keys[i];
  os << "\n";
  for (const ReportRow& row : rows_) {
    for (size_t i = 0; i < keys.size(); ++i) {
      os << (i ? "," : "");
      for (const auto& field : row)
        if (field.first == keys[i]) {
          os << field.second.csv();
          break;
        }
    }
    os << "\n";
  }
  return os.str();
}

Status Report::write(const std::string& json_path, const std::string& csv_path) const {
  QWEN3VL_RETURN_IF_ERROR(write_to(json_path, json()));
  return write_to(csv_path, csv());
}

}  // namespace qwen3vl::bench
