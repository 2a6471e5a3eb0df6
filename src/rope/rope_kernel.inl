// The CPU RoPE kernel, compiled once per ISA (rope_<isa>.cpp defines QWEN3VL_ISA_NS). Per token:
// look up the slot cos/sin rows once (M-RoPE axis gather, split-table combination), then rotate
// every head of q and k in place with SIMD lanes; the scalar remainder uses the same pair rotation
// (detail::rotate_pair), so every ISA gives bit-identical results.
#include <cstdint>

#include "rope_kernels.hpp"
#include "src/cpu/simd/simd.hpp"

namespace qwen3vl::rope::detail::cpu_rope::QWEN3VL_ISA_NS {
namespace {

struct IsaTag {};

// The ISA's SIMD traits (src/cpu/simd); the scalar build (one lane) takes the pair rotation only.
using Simd = ::qwen3vl::detail::cpu::QWEN3VL_ISA_NS::Simd;

template <class V, RopeArithmetic A, class T, class R = typename V::V>
inline void rotate_lanes(R x1, R x2, R c, R s, R* o1, R* o2) {
  if constexpr (A == RopeArithmetic::kFused) {
    *o1 = V::fma(x1, c, V::neg(V::mul(x2, s)));
    *o2 = V::fma(x2, c, V::mul(x1, s));
  } else if constexpr (A == RopeArithmetic::kTransformersFp32) {
    *o1 = V::sub(V::mul(x1, c), V::mul(x2, s));
    *o2 = V::add(V::mul(x2, c), V::mul(x1, s));
  } else {
    const auto a1 = V::template round_to<T>(V::mul(x1, c));
    const auto b1 = V::template round_to<T>(V::mul(x2, s));
    const auto a2 = V::template round_to<T>(V::mul(x2, c));
    const auto b2 = V::template round_to<T>(V::mul(x1, s));
    *o1 = V::sub(a1, b1);
    *o2 = V::add(a2, b2);
  }
}

// One head row: pairs (j, half + j) for NeoX, (2j, 2j + 1) for GPT-J.
// V is a parameter (default Simd) so that the SIMD branch is not instantiated without SIMD lanes.
template <class T, RopeArithmetic A, RopeStyle S, class V = Simd>
inline void rotate_head(T* x, const float* c, const float* s, int64_t half) {
  int64_t j = 0;
  if constexpr (V::kWidth > 1) {
    for (; j + V::kWidth <= half; j += V::kWidth) {
      typename V::V x1, x2, o1, o2;
      if constexpr (S == RopeStyle::kNeox) {
        x1 = V::load(x + j);
        x2 = V::load(x + half + j);
      } else {
        V::load_pairs(x + 2 * j, &x1, &x2);
      }
      rotate_lanes<V, A, T>(x1, x2, V::load(c + j), V::load(s + j), &o1, &o2);
      if constexpr (S == RopeStyle::kNeox) {
        V::store(x + j, o1);
        V::store(x + half + j, o2);
      } else {
        V::store_pairs(x + 2 * j, o1, o2);
      }
    }
  }
  for (; j < half; ++j) {
    T* p1 = S == RopeStyle::kNeox ? x + j : x + 2 * j;
    T* p2 = S == RopeStyle::kNeox ? x + half + j : x + 2 * j + 1;
    float o1, o2;
    rotate_pair<IsaTag, A, T>(to_float(*p1), to_float(*p2), c[j], s[j], &o1, &o2);
    *p1 = from_float<T>(o1);
    *p2 = from_float<T>(o2);
  }
}

template <class T, RopeArithmetic A, RopeStyle S>
void run(const RopeTask& task, int64_t begin, int64_t end) {
  const RopeApplyParams& p = *task.params;
  const RopeApplyShape& sh = task.shape;
  const RopeTableView& table = p.table;
  const int64_t half = table.half;
  const int32_t* positions = p.positions.ptr<const int32_t>();
  const int64_t q_head_stride = p.q.stride[p.q.rank - 2];
  const int64_t k_head_stride = p.k.present() ? p.k.stride[p.k.rank - 2] : 0;
  alignas(64) float c[256], s[256];
  for (int64_t t = begin; t < end; ++t) {
    const int64_t b = t / sh.seq, i = t % sh.seq;
    int32_t pos[3];
    for (int64_t a = 0; a < table.axes; ++a)
      pos[a] = positions[rope_position_offset(p.positions.stride, sh.packed, sh.positions_axis,
                                              sh.positions_axis ? a : 0, b, i)];
    for (int32_t j = 0; j < half; ++j) {
      rope_slot<IsaTag>(table, pos, j, &c[j], &s[j]);
      if constexpr (A == RopeArithmetic::kTransformersStorage) {
        c[j] = round_to<T>(c[j]);
        s[j] = round_to<T>(s[j]);
      }
    }
    T* q = p.q.ptr<T>() + rope_row_offset(p.q, sh, b, i);
    for (int64_t h = 0; h < sh.q_heads; ++h)
      rotate_head<T, A, S>(q + h * q_head_stride, c, s, half);
    if (sh.k_heads > 0) {
      T* k = p.k.ptr<T>() + rope_row_offset(p.k, sh, b, i);
      for (int64_t h = 0; h < sh.k_heads; ++h)
        rotate_head<T, A, S>(k + h * k_head_stride, c, s, half);
    }
  }
}

template <class T, RopeArithmetic A>
void run_style(const RopeTask& task, int64_t begin, int64_t end) {
  if (task.params->style == RopeStyle::kNeox)
    run<T, A, RopeStyle::kNeox>(task, begin, end);
  else
    run<T, A, RopeStyle::kGptj>(task, begin, end);
}

template <class T>
void run_dtype(const RopeTask& task, int64_t begin, int64_t end) {
  switch (task.params->arithmetic) {
    case RopeArithmetic::kFused: run_style<T, RopeArithmetic::kFused>(task, begin, end); break;
    case RopeArithmetic::kTransformersFp32:
      run_style<T, RopeArithmetic::kTransformersFp32>(task, begin, end);
      break;
    case RopeArithmetic::kTransformersStorage:
      run_style<T, RopeArithmetic::kTransformersStorage>(task, begin, end);
      break;
  }
}

}  // namespace

void apply_tokens(const RopeTask& task, int64_t begin, int64_t end) {
  dispatch_float_dtype(task.params->q.dtype,
                       [&](auto tag) { run_dtype<decltype(tag)>(task, begin, end); });
}

}  // namespace qwen3vl::rope::detail::cpu_rope::QWEN3VL_ISA_NS

namespace qwen3vl::rope::detail {
QWEN3VL_DEFINE_ISA_TABLE(RopeCpuKernels, &cpu_rope::QWEN3VL_ISA_NS::apply_tokens)
}  // namespace qwen3vl::rope::detail
