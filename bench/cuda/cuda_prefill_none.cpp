// The cuda-prefill routine in a build without CUDA: it says so (exit 2; --help exits 0).
#include <iostream>

#include "cli/routines.hpp"

namespace qwen3vl::bench {

int cuda_prefill_routine(const std::vector<std::string>& args) {
  const bool help = !args.empty() && (args[0] == "--help" || args[0] == "-h");
  (help ? std::cout : std::cerr)
      << "qwen3vl-attn-bench cuda-prefill: the CUDA prefill target shapes next to cuBLAS SGEMM; "
         "this build has no CUDA (configure with -DQWEN3VL_CUDA=ON)\n";
  return help ? 0 : kExitUsage;
}

}  // namespace qwen3vl::bench
