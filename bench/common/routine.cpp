#include "routine.hpp"

#include <unistd.h>

#include <cstdio>
#include <exception>
#include <iostream>

namespace qwen3vl::bench {

int usage_error(const std::string& routine, const Status& status) {
  std::cerr << "qwen3vl-attn-bench " << routine << ": " << status.to_string() << "\n";
  return kExitUsage;
}

int no_cuda_error(const std::string& routine) {
  return usage_error(
      routine, make_error(StatusCode::kNotImplemented, "--device = cuda: this build has no CUDA"));
}

int run_routine(ArgParser& parser, const std::vector<std::string>& args,
                const std::function<int(Report&)>& body) {
  if (Status s = parser.parse(args); !s.ok()) return usage_error(parser.routine(), s);
  if (parser.help_requested()) {
    std::cout << parser.help();
    return 0;
  }
  Report report(parser.routine(), args);
  // A report written to stdout owns it: the routine's own table goes to stderr meanwhile.
  const bool report_on_stdout = parser.json_path() == "-" || parser.csv_path() == "-";
  int saved_stdout = -1;
  if (report_on_stdout) {
    std::cout.flush();
    std::fflush(stdout);
    saved_stdout = dup(1);
    dup2(2, 1);
  }
  int rc = 0;
  try {
    rc = body(report);
  } catch (const std::exception& e) {
    std::cerr << "qwen3vl-attn-bench " << parser.routine() << ": " << e.what() << "\n";
    rc = kExitFailure;
  }
  if (saved_stdout >= 0) {
    std::cout.flush();
    std::fflush(stdout);
    dup2(saved_stdout, 1);
    close(saved_stdout);
  }
  if (rc == kExitFailure && report.rows().empty()) return rc;
  if (rc == kExitUsage) return rc;
  if (Status s = report.write(parser.json_path(), parser.csv_path()); !s.ok())
    return usage_error(parser.routine(), s);
  return rc;
}

}  // namespace qwen3vl::bench
