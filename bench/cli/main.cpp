// qwen3vl-attn-bench: the project's one benchmark driver. The first argument names a routine
// (prefill, decode, ...), the rest are that routine's flags; see routines.hpp and --help.
#include <iostream>
#include <string>
#include <vector>

#include "routines.hpp"

namespace qwen3vl::bench {

const std::vector<Routine>& routines() {
  static const std::vector<Routine> all = {
      {"prefill", "the variants on the Qwen3-VL workload vs sgemm, checked vs float64 (CPU, CUDA)",
       prefill_routine},
      {"cuda-prefill", "CUDA prefill target shapes and block-sparse vs cuBLAS SGEMM (CUDA builds)",
       cuda_prefill_routine},
      {"decode", "decode against a long KV cache vs the copy bandwidth of the same run (CPU, CUDA)",
       decode_routine},
      {"quest", "Quest page selection vs dense decode: time and recall (CPU, CUDA)", quest_routine},
      {"rope", "fused q+k RoPE vs a copy of the same bytes (CPU, CUDA)", rope_routine},
      {"moh", "mixture-of-heads at 25-100% of the heads vs dense flash2 (CPU, CUDA)", moh_routine},
      {"linear", "causal linear attention vs flash2 over N: scaling and crossover (CPU, CUDA)",
       linear_routine},
      {"layer", "one Qwen3-VL text attention layer, prefill and decode, time split (CPU)",
       layer_routine},
      {"dynamic-sparse",
       "dynamic sparse prefill vs dense flash2: time, density, recall (CPU, CUDA)",
       dynamic_sparse_routine},
      {"block-sparse", "block-sparse at 100/50/10/5% density vs dense flash2 (CPU)",
       block_sparse_routine},
      {"static-sparse", "each static-sparse pattern vs dense flash2 (CPU)", static_sparse_routine},
      {"tiered", "model decode over the tiered KV store (arena, host, disk) vs all-resident (CPU)",
       tiered_routine},
      {"store", "the disk tier's read and write throughput over slot sizes and queue depths vs fio",
       store_routine},
      {"plan", "where a model's KV would live (arena, host, disk) at a context and budgets",
       plan_routine},
      {"tier-copy", "the host tier's copies into and out of a CUDA arena vs cudaMemcpyAsync (CUDA)",
       tier_copy_routine},
  };
  return all;
}

namespace {

std::string driver_help() {
  std::string text =
      "usage: qwen3vl-attn-bench ROUTINE [--flag value ...]\n"
      "       qwen3vl-attn-bench ROUTINE --help\n\n"
      "Routines:\n";
  for (const Routine& r : routines()) {
    std::string name = "  " + std::string(r.name);
    name.resize(18, ' ');
    text += name + r.summary + "\n";
  }
  text +=
      "\nEvery routine takes --json FILE and --csv FILE (- = stdout; the routine's table then "
      "goes\n"
      "to stderr): the rows it printed, with the machine (CPU model, cores, ISA; GPU name and\n"
      "driver), the commit (git describe when it was built) and the date.\n"
      "While stderr is a terminal, prefill, decode, quest, block-sparse and static-sparse show\n"
      "which case runs (\"[prefill] case 3/12 ...\", redrawn in place, erased before each\n"
      "result). QWEN3VL_BENCH_PROGRESS=0 turns that off, =1 draws it into a pipe too.\n"
      "Exit status: 0 ok, 1 a run failed or missed its check, 2 bad arguments or something this\n"
      "build or machine lacks.\n";
  return text;
}

}  // namespace
}  // namespace qwen3vl::bench

int main(int argc, char** argv) {
  using namespace qwen3vl::bench;
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << driver_help();
    return args.empty() ? kExitUsage : 0;
  }
  for (const Routine& r : routines())
    if (args[0] == r.name) return r.run({args.begin() + 1, args.end()});
  std::string names;
  for (const Routine& r : routines()) names += (names.empty() ? "" : ", ") + std::string(r.name);
  std::cerr << "qwen3vl-attn-bench: unknown routine '" << args[0] << "': allowed " << names
            << " (see --help)\n";
  return kExitUsage;
}
