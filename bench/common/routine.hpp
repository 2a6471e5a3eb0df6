// What every routine of qwen3vl-attn-bench does around its measurement: parse its flags, answer
// --help, run, and write the report --json / --csv ask for. Exit status: 0 ok, 1 a run failed (or
// missed its accuracy check), 2 bad flags or something this build or machine lacks.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "args.hpp"
#include "report.hpp"

namespace qwen3vl::bench {

constexpr int kExitFailure = 1, kExitUsage = 2;

// Parses `args` into `parser`, prints its help when asked, then runs `body` (which fills `report`
// and returns an exit status) and writes the report. A Status from parsing, or an exception from
// `body`, is printed as "qwen3vl-attn-bench <routine>: ..." on stderr.
int run_routine(ArgParser& parser, const std::vector<std::string>& args,
                const std::function<int(Report&)>& body);

// The exit status for a usage error, printed first.
int usage_error(const std::string& routine, const Status& status);

// The usage error for `--device cuda` in a build without CUDA.
int no_cuda_error(const std::string& routine);

// One routine: its name, a line for the driver's --help, and its entry point (argv after the name).
struct Routine {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& args);
};

}  // namespace qwen3vl::bench
