// The commit qwen3vl-attn-bench's reports name. Its definition is generated at every build by
// cmake/write_bench_commit.cmake (bench/CMakeLists.txt), so only that one translation unit
// recompiles when the commit changes.
#pragma once

namespace qwen3vl::bench {

// `git describe --always --dirty --abbrev=12` of the source tree when it was last built, the name
// given by -DQWEN3VL_BENCH_COMMIT=... when configured with one, else "unknown" (no git checkout).
const char* bench_commit();

}  // namespace qwen3vl::bench
