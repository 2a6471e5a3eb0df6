// The CPU's LayerOps: projections as tiles of Eigen GEMMs compiled per ISA and spread over the
// oneTBB arena, the per-head RMSNorm, and the CPU RoPE applier.
#include <tbb/parallel_for.h>

#include <cmath>
#include <cstring>
#include <deque>

#include "layer_ops.hpp"
#include "projection_kernels.hpp"
#include "src/core/workspace_carver.hpp"
#include "src/cpu/cpu_backend.hpp"

namespace qwen3vl::layers::detail {
namespace {

template <class T>
void store_row(const float* src, const float* bias, T* dst, int64_t n) {
  for (int64_t c = 0; c < n; ++c) dst[c] = from_float<T>(bias ? src[c] + bias[c] : src[c]);
}

// How a projection of `rows` x `cols` outputs is cut into tasks: about four per thread, row tiles
// tall enough for Eigen's own blocking, columns split only when rows are few (decode).
struct Tiling {
  int64_t row_tile, col_tile, row_tiles, col_tiles;
};

Tiling plan_tiles(int64_t rows, int64_t cols, int threads) {
  const int64_t target = 4 * static_cast<int64_t>(threads);
  Tiling t;
  t.row_tile =
      rows <= 64 ? rows : std::max<int64_t>(64, ((rows + target - 1) / target + 63) / 64 * 64);
  t.row_tile = std::max<int64_t>(1, std::min(t.row_tile, rows));
  t.row_tiles = (rows + t.row_tile - 1) / t.row_tile;
  const int64_t want_cols = std::max<int64_t>(1, (target + t.row_tiles - 1) / t.row_tiles);
  t.col_tile = std::max<int64_t>(64, ((cols + want_cols - 1) / want_cols + 63) / 64 * 64);
  t.col_tile = std::min(t.col_tile, std::max<int64_t>(cols, 1));
  t.col_tiles = (cols + t.col_tile - 1) / t.col_tile;
  return t;
}

class CpuLayerOps final : public LayerOps {
 public:
  Status init(const CpuOptions& options) {
    QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::CpuBackend::create(options, &backend_));
    gemm_ = qwen3vl::detail::isa_table<ProjectionKernels>(backend_->isa()).gemm_tile;
    return rope::create_rope_cpu(options, &rope_);
  }

  Device device() const override { return Device::kCPU; }

  Status store(const std::vector<float>& host, const float** out) override {
    buffers_.push_back(host);
    *out = buffers_.back().data();
    return Status();
  }

  Status rope_table(const rope::RopeTable& table, rope::RopeTableView* out) override {
    *out = table.view();
    return Status();
  }

  const rope::RopeApplier& rope() const override { return *rope_; }

  // f16 / bf16 staging: x widened to fp32, then fp32 y (sizing carves what linear() carves).
  static void carve_staging(qwen3vl::detail::Carver& c, const RowsView& x, int64_t out, float** x32,
                            float** y32) {
    *x32 = c.take<float>(x.count() * x.cols);
    *y32 = c.take<float>(x.count() * out);
  }

  size_t linear_scratch_bytes(const RowsView& x, int64_t out) const override {
    if (x.dtype == DType::kF32) return 0;
    qwen3vl::detail::Carver sizing;
    float *x32, *y32;
    carve_staging(sizing, x, out, &x32, &y32);
    return sizing.used() + qwen3vl::detail::kAlignSlack;
  }

  Status linear(const RowsView& x, const Linear& w, const RowsView& y, void* scratch,
                void* /*stream*/) const override {
    if (x.cols != w.in || y.cols != w.out || x.count() != y.count())
      return make_error(StatusCode::kInternal, "linear: x [", x.count(), ", ", x.cols, "], W [",
                        w.out, ", ", w.in, "], y [", y.count(), ", ", y.cols, "] do not agree");
    const bool direct = x.dtype == DType::kF32 && y.dtype == DType::kF32;
    if (direct) return run_tiles(x, w, y);
    // f16 / bf16: widen x once, multiply in fp32, round each output once.
    qwen3vl::detail::Carver carver = qwen3vl::detail::carve(scratch);
    float *x32, *y32;
    carve_staging(carver, x, y.cols, &x32, &y32);
    backend_->arena().execute([&] {
      tbb::parallel_for(int64_t{0}, x.count(), [&](int64_t r) {
        const int64_t b = r / x.rows, i = r % x.rows;
        dispatch_float_dtype(x.dtype, [&](auto tag) {
          using T = decltype(tag);
          const T* src = static_cast<const T*>(x.data) + b * x.batch_stride + i * x.row_stride;
          for (int64_t c = 0; c < x.cols; ++c) x32[r * x.cols + c] = to_float(src[c]);
        });
      });
    });
    RowsView xs{x32, DType::kF32, 1, x.count(), x.cols, 0, x.cols};
    RowsView ys{y32, DType::kF32, 1, y.count(), y.cols, 0, y.cols};
    return run_tiles(xs, w, ys, &y);
  }

  Status rms_norm_heads(const TensorView& x, const float* weight, float eps,
                        void* /*stream*/) const override {
    const int r = x.rank;
    const int64_t heads = x.shape[r - 2], dim = x.shape[r - 1];
    const int64_t outer = r == 4 ? x.shape[0] : 1, rows = x.shape[r - 3];
    backend_->arena().execute([&] {
      tbb::parallel_for(int64_t{0}, outer * rows, [&](int64_t t) {
        const int64_t o = t / rows, i = t % rows;
        for (int64_t h = 0; h < heads; ++h) {
          const int64_t at = r == 4 ? x.offset(o, i, h) : x.offset(i, h);
          dispatch_float_dtype(x.dtype, [&](auto tag) {
            using T = decltype(tag);
            norm_head(x.ptr<T>() + at, weight, eps, dim);
          });
        }
      });
    });
    return Status();
  }

  Status copy_from_host(void* dst, const void* src, size_t bytes, void*) const override {
    if (bytes) std::memcpy(dst, src, bytes);
    return Status();
  }
  Status synchronize(void*) const override { return Status(); }
  std::string describe() const override {
    return std::string("cpu layer ops (Eigen GEMM tiles, ") + backend_->describe() + ")";
  }

 private:
  template <class T>
  static void norm_head(T* v, const float* weight, float eps, int64_t dim) {
    float sum = 0.0f;
    for (int64_t d = 0; d < dim; ++d) {
      const float f = to_float(v[d]);
      sum += f * f;
    }
    const float scale = 1.0f / std::sqrt(sum / static_cast<float>(dim) + eps);
    for (int64_t d = 0; d < dim; ++d) {
      const float normed = to_float(from_float<T>(to_float(v[d]) * scale));  // cast back first
      v[d] = from_float<T>(weight[d] * normed);
    }
  }

  // GEMM tiles over (batch, row tile, column tile); `round_to` (staged f16/bf16) receives the fp32
  // tile plus bias, rounded; otherwise the bias is added in place.
  Status run_tiles(const RowsView& x, const Linear& w, const RowsView& y,
                   const RowsView* round_to = nullptr) const {
    const Tiling t = plan_tiles(x.rows, w.out, backend_->threads());
    const int64_t tasks = x.batch * t.row_tiles * t.col_tiles;
    backend_->arena().execute([&] {
      tbb::parallel_for(int64_t{0}, tasks, [&](int64_t task) {
        const int64_t b = task / (t.row_tiles * t.col_tiles);
        const int64_t rt = task / t.col_tiles % t.row_tiles, ct = task % t.col_tiles;
        const int64_t r0 = rt * t.row_tile, c0 = ct * t.col_tile;
        const int64_t rows = std::min(t.row_tile, x.rows - r0),
                      cols = std::min(t.col_tile, w.out - c0);
        const float* xp =
            static_cast<const float*>(x.data) + b * x.batch_stride + r0 * x.row_stride;
        float* yp = static_cast<float*>(y.data) + b * y.batch_stride + r0 * y.row_stride + c0;
        gemm_(xp, x.row_stride, w.w + c0 * w.in, w.in, yp, y.row_stride, rows, cols, w.in);
        const float* bias = w.bias ? w.bias + c0 : nullptr;
        for (int64_t i = 0; i < rows; ++i) {
          float* row = yp + i * y.row_stride;
          if (round_to == nullptr) {
            if (bias)
              for (int64_t c = 0; c < cols; ++c) row[c] += bias[c];
            continue;
          }
          const int64_t flat = r0 + i, ob = flat / round_to->rows, oi = flat % round_to->rows;
          dispatch_float_dtype(round_to->dtype, [&](auto tag) {
            using T = decltype(tag);
            T* dst = static_cast<T*>(round_to->data) + ob * round_to->batch_stride +
                     oi * round_to->row_stride + c0;
            store_row(row, bias, dst, cols);
          });
        }
      });
    });
    return Status();
  }

  std::unique_ptr<qwen3vl::detail::CpuBackend> backend_;
  std::unique_ptr<rope::RopeApplier> rope_;
  GemmTile gemm_ = nullptr;
  std::deque<std::vector<float>> buffers_;  // deque: stored pointers stay valid
};

}  // namespace

Status create_cpu_layer_ops(const CpuOptions& options, std::unique_ptr<LayerOps>* out) {
  auto ops = std::make_unique<CpuLayerOps>();
  QWEN3VL_RETURN_IF_ERROR(ops->init(options));
  *out = std::move(ops);
  return Status();
}

}  // namespace qwen3vl::layers::detail
