// MInference vertical-slash routing on CUDA, the CPU router's three phases as launches:
//   last_rows_kernel  one block per (last row, sequence x query head): the row's logits against
//                     every key it sees (soft-cap, additive mask), its softmax, and each
//                     probability added to its column's and its diagonal's sum of the KV group;
//   select_kernel     one block per (layout, columns | diagonals): the forced entries, then the top
//                     m by (sum descending, index ascending): the m-th largest sum by a bitwise
//                     search over the float bits (sums are >= 0), ties at it taken by index;
//   mark_kernel       one block per (query block, layout): every key block a kept column lies in or
//                     a kept diagonal crosses, within the keys the block's rows see, in order.
// The sums are float atomics (order varies run to run), so a near tie may select differently from
// the CPU's ordered sums; the selection itself is exact.
#include "vertical_slash_cuda.cuh"

#include <cmath>

#include "block_sum.cuh"
#include "cuda/common/device_util.cuh"
#include "qwen3vl/cuda/check.cuh"

namespace qwen3vl::detail {
namespace {

constexpr int kThreads = 256;

__device__ int64_t aligned_position(const AttentionArgs& a, const DeviceSpan& span, int64_t i) {
  return a.mask_kind == MaskKind::kCausalTopLeft ? i : i + span.k_len - span.q_len;
}

__global__ void last_rows_kernel(VerticalSlashArgs v) {
  extern __shared__ float q_row[];  // [head_dim], scaled
  __shared__ float warps[kThreads / 32];
  __shared__ float sum_cell;
  const AttentionArgs& a = v.a;
  const int64_t r = blockIdx.x, t = blockIdx.y, h = t % a.heads, b = t / a.heads, kv = h / a.group;
  const int64_t l = b * v.kv_heads + kv;
  const DeviceSpan span = sequence_span(a, b);
  const int64_t rows = min(static_cast<int64_t>(v.config.last_queries), span.q_len);
  if (r >= rows) return;
  const int64_t i = span.q_len - rows + r;
  const KeyRange keys =
      visible_keys(a.mask_kind, a.window_left, a.window_right, i, span.q_len, span.k_len);
  if (keys.end <= keys.begin) return;
  if (threadIdx.x == 0) sum_cell = 0.0f;
  const int64_t bq = a.cu_q ? 0 : b;  // varlen rows are addressed by their packed token
  for (int64_t c = threadIdx.x; c < a.head_dim; c += blockDim.x)
    q_row[c] =
        load_element(a.q.data, row_offset(a.q, bq, span.q_start + i, h) + c, a.dtype) * a.scale;
  __syncthreads();
  float* s = v.scores + (t * v.a_max + r) * v.max_k;
  const float inf = __int_as_float(0x7f800000);
  float local = -inf;
  for (int64_t j = keys.begin + threadIdx.x; j < keys.end; j += blockDim.x) {
    const int64_t k0 = row_offset(a.k, bq, span.k_start + j, kv);
    float x = 0.0f;
    for (int64_t c = 0; c < a.head_dim; ++c)
      x += q_row[c] * load_element(a.k.data, k0 + c, a.dtype);
    if (a.softcap > 0.0f) x = a.softcap * tanhf(x / a.softcap);
    if (a.mask != nullptr) x += load_mask(a, b, h, i, j);
    s[j] = x;
    local = fmaxf(local, x);
  }
  const float mx = block_max(local, warps);
  if (!(mx > -inf)) return;  // every key masked: no vote (uniform over the block)
  float local_sum = 0.0f;
  for (int64_t j = keys.begin + threadIdx.x; j < keys.end; j += blockDim.x)
    local_sum += s[j] = expf(s[j] - mx);
  const float inv = 1.0f / block_sum(local_sum, &sum_cell);
  const int64_t offset = aligned_position(a, span, i) + span.k_len - 1;  // delta + k_len - 1
  float* column = v.vertical + l * v.max_k;
  float* diagonal = v.slash + l * 2 * v.max_k;
  for (int64_t j = keys.begin + threadIdx.x; j < keys.end; j += blockDim.x) {
    const float w = s[j] * inv;
    atomicAdd(column + j, w);
    const int64_t e = offset - j;
    if (e >= 0 && e < 2 * span.k_len - 1) atomicAdd(diagonal + e, w);
  }
}

__global__ void select_kernel(VerticalSlashArgs v) {
  __shared__ int count_cell;
  const DynamicSparseConfig& cfg = v.config;
  const int64_t l = blockIdx.x, b = l / v.kv_heads;
  const bool columns = blockIdx.y == 0;
  const DeviceSpan span = sequence_span(v.a, b);
  const int64_t k_len = span.k_len, n = columns ? k_len : max(int64_t{0}, 2 * k_len - 1);
  float* score = columns ? v.vertical + l * v.max_k : v.slash + l * 2 * v.max_k;
  unsigned char* flag = columns ? v.kept_v + l * v.max_k : v.kept_s + l * 2 * v.max_k;
  const int64_t want =
      cfg.keep_fraction > 0.0
          ? static_cast<int64_t>(ceil(cfg.keep_fraction * static_cast<double>(k_len)))
          : (columns ? cfg.vertical : cfg.slash);
  const int64_t m = min(want, n);
  const int64_t forced = min(min(columns ? cfg.forced_vertical : cfg.forced_slash, m), k_len);
  if (threadIdx.x == 0) count_cell = 0;
  for (int64_t e = threadIdx.x; e < forced; e += blockDim.x)
    score[columns ? e : e + k_len - 1] = __int_as_float(0x7f800000);
  __syncthreads();
  if (m <= 0 || m >= n) {
    for (int64_t e = threadIdx.x; e < n; e += blockDim.x) flag[e] = m > 0;
    return;
  }
  unsigned threshold = 0u;  // the m-th largest bit pattern: largest x with #{bits >= x} >= m
  for (int bit = 30; bit >= 0; --bit) {
    const unsigned candidate = threshold | (1u << bit);
    int c = 0;
    for (int64_t e = threadIdx.x; e < n; e += blockDim.x)
      c += __float_as_uint(score[e]) >= candidate;
    if (block_sum(c, &count_cell) >= m) threshold = candidate;
  }
  int above = 0;
  for (int64_t e = threadIdx.x; e < n; e += blockDim.x) {
    const bool kept = __float_as_uint(score[e]) > threshold;
    flag[e] = kept;
    above += kept;
  }
  const int64_t need = m - block_sum(above, &count_cell);  // ties at the threshold, lowest first
  if (threadIdx.x < 32) {
    const unsigned lane = threadIdx.x;
    int64_t base = 0;
    for (int64_t e0 = 0; e0 < n && base < need; e0 += 32) {
      const int64_t e = e0 + lane;
      const bool tie = e < n && __float_as_uint(score[e]) == threshold;
      const unsigned ballot = __ballot_sync(0xffffffffu, tie);
      if (tie && base + __popc(ballot & ((1u << lane) - 1u)) < need) flag[e] = 1;
      base += __popc(ballot);
    }
  }
}

__global__ void mark_kernel(VerticalSlashArgs v) {
  extern __shared__ unsigned char marked[];  // [nbk]
  __shared__ int hull_begin, hull_end;
  const AttentionArgs& a = v.a;
  const int64_t row = blockIdx.x, l = blockIdx.y, b = l / v.kv_heads;
  const int32_t bk = v.config.block_k;
  const DeviceSpan span = sequence_span(a, b);
  const int64_t r0 = row * v.config.block_q, r1 = min(r0 + v.config.block_q, span.q_len);
  for (int64_t c = threadIdx.x; c < v.nbk; c += blockDim.x) marked[c] = 0;
  rows_key_hull(a, span, r0, r1, &hull_begin, &hull_end);
  int32_t* count = v.counts + l * v.nbq + row;
  const int64_t hb = hull_begin, he = hull_end;
  if (he <= hb) {
    if (threadIdx.x == 0) *count = 0;
    return;
  }
  const unsigned char* columns = v.kept_v + l * v.max_k;
  for (int64_t j = hb + threadIdx.x; j < he; j += blockDim.x)
    if (columns[j]) marked[j / bk] = 1;
  const int64_t pos0 = aligned_position(a, span, r0), pos1 = aligned_position(a, span, r1 - 1);
  const unsigned char* diagonals = v.kept_s + l * 2 * v.max_k;
  for (int64_t e = threadIdx.x; e < 2 * span.k_len - 1; e += blockDim.x) {
    if (!diagonals[e]) continue;
    const int64_t delta = e - (span.k_len - 1);
    const int64_t lo = max(pos0 - delta, hb), hi = min(pos1 - delta, he - 1);
    for (int64_t c = lo / bk; lo <= hi && c <= hi / bk; ++c) marked[c] = 1;
  }
  __syncthreads();
  if (threadIdx.x < 32) {  // warp 0 writes the marked blocks in increasing order
    const unsigned lane = threadIdx.x;
    int32_t* out = v.slots + (l * v.nbq + row) * v.row_cap;
    int base = 0;
    const int64_t c0 = hb / bk, c1 = (he - 1) / bk + 1;
    for (int64_t c = c0; c < c1; c += 32) {
      const bool kept = c + lane < c1 && marked[c + lane] != 0;
      const unsigned ballot = __ballot_sync(0xffffffffu, kept);
      if (kept) out[base + __popc(ballot & ((1u << lane) - 1u))] = static_cast<int32_t>(c + lane);
      base += __popc(ballot);
    }
    if (lane == 0) *count = base;
  }
}

}  // namespace

VerticalSlashScratch vertical_slash_scratch(Carver* c, int64_t batch, int64_t heads,
                                            int64_t kv_heads, int64_t a_max, int64_t max_k) {
  VerticalSlashScratch s;
  const int64_t layouts = batch * kv_heads;
  s.scores = c->take<float>(batch * heads * a_max * max_k);
  s.vertical = c->take<float>(layouts * max_k);
  s.slash = c->take<float>(layouts * 2 * max_k);
  s.kept_v = c->take<unsigned char>(layouts * max_k);
  s.kept_s = c->take<unsigned char>(layouts * 2 * max_k);
  return s;
}

Status launch_vertical_slash(const VerticalSlashArgs& v, cudaStream_t stream) {
  const int64_t layouts = v.a.batch * v.kv_heads;
  if (layouts == 0 || v.nbq == 0) return Status();
  if (v.nbk > 48 * 1024)
    return make_error(StatusCode::kUnsupported, "key blocks = ", v.nbk,
                      ": the CUDA vertical-slash router marks at most ", 48 * 1024,
                      " per query block in shared memory");
  QWEN3VL_CUDA_RETURN_IF_ERROR(
      cudaMemsetAsync(v.vertical, 0, static_cast<size_t>(layouts * v.max_k) * 4, stream));
  QWEN3VL_CUDA_RETURN_IF_ERROR(
      cudaMemsetAsync(v.slash, 0, static_cast<size_t>(layouts * 2 * v.max_k) * 4, stream));
  if (v.a_max > 0 && v.max_k > 0) {
    const dim3 grid(static_cast<unsigned>(v.a_max), static_cast<unsigned>(v.a.batch * v.a.heads));
    last_rows_kernel<<<grid, kThreads, static_cast<size_t>(v.a.head_dim) * 4, stream>>>(v);
    QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("vertical-slash last_rows_kernel");
  }
  select_kernel<<<dim3(static_cast<unsigned>(layouts), 2), kThreads, 0, stream>>>(v);
  QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("vertical-slash select_kernel");
  mark_kernel<<<dim3(static_cast<unsigned>(v.nbq), static_cast<unsigned>(layouts)), kThreads,
                static_cast<size_t>(v.nbk), stream>>>(v);
  QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("vertical-slash mark_kernel");
  return Status();
}

}  // namespace qwen3vl::detail
