// The routines of qwen3vl-attn-bench, one entry point each (argv after the routine's name). Each
// lives with its family (bench/<family>/) and measures what the executable it replaced measured,
// the same way.
#pragma once

#include <string>
#include <vector>

#include "common/routine.hpp"

namespace qwen3vl::bench {

int prefill_routine(const std::vector<std::string>& args);         // bench/cli/prefill.cpp
int cuda_prefill_routine(const std::vector<std::string>& args);    // bench/cuda/
int decode_routine(const std::vector<std::string>& args);          // bench/kv_cache/
int quest_routine(const std::vector<std::string>& args);           // bench/quest/
int rope_routine(const std::vector<std::string>& args);            // bench/rope/
int moh_routine(const std::vector<std::string>& args);             // bench/mixture_of_heads/
int linear_routine(const std::vector<std::string>& args);          // bench/linear/
int layer_routine(const std::vector<std::string>& args);           // bench/layers/
int dynamic_sparse_routine(const std::vector<std::string>& args);  // bench/dynamic_sparse/
int block_sparse_routine(const std::vector<std::string>& args);    // bench/block_sparse/
int static_sparse_routine(const std::vector<std::string>& args);   // bench/static_sparse/
int tiered_routine(const std::vector<std::string>& args);          // bench/lifecycle/
int store_routine(const std::vector<std::string>& args);           // bench/lifecycle/
int plan_routine(const std::vector<std::string>& args);            // bench/lifecycle/
int tier_copy_routine(const std::vector<std::string>& args);       // bench/lifecycle/

// Every routine, in the order --help lists them.
const std::vector<Routine>& routines();

}  // namespace qwen3vl::bench
