// The check that rows seeing no key give output 0 and LSE -inf (never NaN), for any variant and
// device once the result is on the host.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>

#include "support/problem.hpp"

namespace qwen3vl::testing {

// `empty(b, i)`: whether row i of sequence b sees no key. Those rows must give output 0 and LSE
// -inf, the others a finite LSE; nothing may be NaN. BSHD output and [B, H, Lq] LSE.
inline void expect_empty_rows_zero(const Problem& p,
                                   const std::function<bool(int64_t, int64_t)>& empty,
                                   const std::string& label) {
  const ProblemSpec& s = p.spec;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t i = 0; i < s.seq_q; ++i)
      for (int64_t h = 0; h < s.heads; ++h) {
        const bool none = empty(b, i);
        const float lse = p.lse.get((b * s.heads + h) * s.seq_q + i);
        EXPECT_EQ(none, lse == neg_inf) << label << " b" << b << " row " << i;
        EXPECT_FALSE(std::isnan(lse)) << label << " b" << b << " row " << i;
        for (int64_t c = 0; c < s.head_dim; ++c) {
          const float o = p.out.get(((b * s.seq_q + i) * s.heads + h) * s.head_dim + c);
          ASSERT_FALSE(std::isnan(o)) << label << " b" << b << " row " << i;
          if (none) {
            ASSERT_EQ(o, 0.0f) << label << " b" << b << " row " << i;
          }
        }
      }
}

}  // namespace qwen3vl::testing
