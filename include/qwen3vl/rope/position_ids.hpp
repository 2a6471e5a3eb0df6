// 3-D M-RoPE position ids for a batch of token sequences with images and videos: transformers'
// get_rope_index (5.x, which reads mm_token_type_ids) for Qwen2-VL, Qwen2.5-VL and Qwen3-VL.
//
// Per batch row, over the tokens the attention mask keeps: runs of equal token type are scanned
// left to right from current = 0. A text run of length n gets current..current+n-1 on all three
// axes (current += n). An image or video run takes the next grid (t, h, w) of its kind and gets,
// for frame f and merged cell (r, c), (current + f * interval, current + r, current + c) with the
// LLM grid (t, h/m, w/m); then current += max(h, w) / m. Qwen3-VL splits each video into t frames
// of (1, h, w) (timestamp text separates them); Qwen2.5-VL spaces frames by interval =
// tokens_per_second * trunc(second_per_grid_t); otherwise interval = 1.
// delta = max position + 1 - kept tokens: a decode token at cache index n takes n + delta on every
// axis. Padded slots get pad_position (0 in transformers 5; 4.x wrote 1).
// Worked example (Qwen3-VL): [x x x <vs> I*6 <ve> x x], grid (1, 4, 6): t = 0 1 2 3 4 4 4 4 4 4 7 8
// 9, h = 0 1 2 3 4 4 4 5 5 5 7 8 9, w = 0 1 2 3 4 5 6 4 5 6 7 8 9, delta = -3.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "qwen3vl/core/checked_math.hpp"
#include "qwen3vl/core/status.hpp"
#include "qwen3vl/rope/grid.hpp"

namespace qwen3vl::rope {

enum class RopeIndexModel : uint8_t { kQwen2VL, kQwen25VL, kQwen3VL };

inline const char* to_string(RopeIndexModel m) {
  switch (m) {
    case RopeIndexModel::kQwen2VL: return "qwen2-vl";
    case RopeIndexModel::kQwen25VL: return "qwen2.5-vl";
    case RopeIndexModel::kQwen3VL: return "qwen3-vl";
  }
  return "?";
}

// Token types (transformers' mm_token_type_ids).
constexpr int32_t kTextToken = 0, kImageToken = 1, kVideoToken = 2;

struct RopeIndexInput {
  RopeIndexModel model = RopeIndexModel::kQwen3VL;
  int64_t batch = 1, seq_len = 0;
  const int32_t* token_types = nullptr;  // [batch, seq_len]: kTextToken, kImageToken, kVideoToken
  const int32_t* attention_mask =
      nullptr;                          // [batch, seq_len] (1 keep, 0 padding) or null: keep all
  std::vector<GridThw> image_grid_thw;  // in order of appearance over the whole batch
  std::vector<GridThw> video_grid_thw;
  std::vector<double> second_per_grid_ts;  // Qwen2.5-VL, one per video; empty: 1 each
  int64_t tokens_per_second = 2;           // Qwen2.5-VL vision_config.tokens_per_second
  int64_t spatial_merge_size = 2;
  int32_t pad_position = 0;
};

struct RopeIndexOutput {
  std::vector<int32_t> positions;  // [3, batch, seq_len]
  std::vector<int32_t> delta;      // [batch]
};

// token_types from input ids (what the processors return as mm_token_type_ids).
inline std::vector<int32_t> token_types_from_ids(const int32_t* ids, int64_t n,
                                                 int32_t image_token_id, int32_t video_token_id) {
  std::vector<int32_t> types(static_cast<size_t>(n), kTextToken);
  for (int64_t i = 0; i < n; ++i)
    types[static_cast<size_t>(i)] = ids[i] == image_token_id   ? kImageToken
                                    : ids[i] == video_token_id ? kVideoToken
                                                               : kTextToken;
  return types;
}

namespace detail {

struct VisionGrid {
  GridThw grid;
  int64_t interval = 1;  // temporal step between frames
};

inline Status rope_index_grids(const RopeIndexInput& in, std::vector<VisionGrid>* images,
                               std::vector<VisionGrid>* videos) {
  const int64_t m = in.spatial_merge_size;
  const auto check = [&](const std::vector<GridThw>& grids, const char* name) {
    for (size_t g = 0; g < grids.size(); ++g) {
      const GridThw& d = grids[g];
      int64_t patches = 0;
      if (d.t < 1 || d.h < m || d.w < m || d.h % m || d.w % m || !checked_mul(d.t, d.h, &patches) ||
          !checked_mul(patches, d.w, &patches) || patches > (int64_t{1} << 30))
        return make_error(StatusCode::kInvalidArgument, name, "[", g, "] = (", d.t, ", ", d.h, ", ",
                          d.w,
                          "): allowed t >= 1 and h, w positive multiples of spatial_merge_size (",
                          m, "), at most 2^30 patches");
    }
    return Status();
  };
  QWEN3VL_RETURN_IF_ERROR(check(in.image_grid_thw, "image_grid_thw"));
  QWEN3VL_RETURN_IF_ERROR(check(in.video_grid_thw, "video_grid_thw"));
  if (in.model == RopeIndexModel::kQwen25VL && !in.second_per_grid_ts.empty() &&
      in.second_per_grid_ts.size() != in.video_grid_thw.size())
    return make_error(StatusCode::kShapeMismatch,
                      "second_per_grid_ts.size() = ", in.second_per_grid_ts.size(),
                      ": must be 0 or video_grid_thw.size() = ", in.video_grid_thw.size());
  for (const GridThw& g : in.image_grid_thw) images->push_back({g, 1});
  for (size_t v = 0; v < in.video_grid_thw.size(); ++v) {
    const GridThw& g = in.video_grid_thw[v];
    if (in.model == RopeIndexModel::kQwen3VL) {
      for (int64_t f = 0; f < g.t; ++f) videos->push_back({GridThw{1, g.h, g.w}, 1});
    } else if (in.model == RopeIndexModel::kQwen25VL) {
      const double spg = in.second_per_grid_ts.empty() ? 1.0 : in.second_per_grid_ts[v];
      if (!std::isfinite(spg) || spg < 0.0 || spg > 1e6)
        return make_error(StatusCode::kInvalidArgument, "second_per_grid_ts[", v, "] = ", spg,
                          ": allowed 0..1e6");
      videos->push_back({g, in.tokens_per_second * static_cast<int64_t>(spg)});
    } else {
      videos->push_back({g, 1});
    }
  }
  return Status();
}

}  // namespace detail

// On error *out is left as it was.
[[nodiscard]] inline Status get_rope_index(const RopeIndexInput& in, RopeIndexOutput* result) {
  int64_t total = 0;
  if (in.batch < 0 || in.seq_len < 0 || !checked_mul(in.batch, in.seq_len, &total) ||
      total > (int64_t{1} << 31))
    return make_error(StatusCode::kInvalidArgument, "batch = ", in.batch,
                      ", seq_len = ", in.seq_len,
                      ": allowed non-negative with batch * seq_len <= 2^31");
  if (in.token_types == nullptr && total > 0)
    return make_error(StatusCode::kNullPointer, "token_types = null");
  if (in.model != RopeIndexModel::kQwen2VL && in.model != RopeIndexModel::kQwen25VL &&
      in.model != RopeIndexModel::kQwen3VL)
    return make_error(StatusCode::kInvalidArgument, "model = ", static_cast<int>(in.model),
                      ": allowed 0 (qwen2-vl), 1 (qwen2.5-vl), 2 (qwen3-vl)");
  if (result == nullptr) return make_error(StatusCode::kNullPointer, "out = null");
  if (in.spatial_merge_size < 1 || in.spatial_merge_size > 64)
    return make_error(StatusCode::kInvalidArgument, "spatial_merge_size = ", in.spatial_merge_size,
                      ": allowed 1..64");
  if (in.tokens_per_second < 0 || in.tokens_per_second > 1000000)
    return make_error(StatusCode::kInvalidArgument, "tokens_per_second = ", in.tokens_per_second,
                      ": allowed 0..1e6");
  std::vector<detail::VisionGrid> grids[3];
  QWEN3VL_RETURN_IF_ERROR(detail::rope_index_grids(in, &grids[kImageToken], &grids[kVideoToken]));
  size_t next[3] = {0, 0, 0};
  const int64_t m = in.spatial_merge_size, L = in.seq_len, B = in.batch;
  RopeIndexOutput built;  // moved into *result only on success
  RopeIndexOutput* out = &built;
  out->positions.assign(static_cast<size_t>(3 * B * L), in.pad_position);
  out->delta.assign(static_cast<size_t>(B), 0);
  std::vector<int64_t> kept;
  for (int64_t b = 0; b < B; ++b) {
    const int32_t* types = in.token_types + b * L;
    kept.clear();
    for (int64_t i = 0; i < L; ++i) {
      const int32_t keep = in.attention_mask ? in.attention_mask[b * L + i] : 1;
      if (keep != 0 && keep != 1)
        return make_error(StatusCode::kInvalidArgument, "attention_mask[", b, ", ", i, "] = ", keep,
                          ": allowed 0 or 1");
      if (types[i] < kTextToken || types[i] > kVideoToken)
        return make_error(StatusCode::kInvalidArgument, "token_types[", b, ", ", i,
                          "] = ", types[i], ": allowed 0 (text), 1 (image), 2 (video)");
      if (keep) kept.push_back(i);
    }
    int64_t current = 0, max_pos = -1;
    const auto put = [&](int64_t slot, int64_t t, int64_t h, int64_t w) {
      const int64_t i = kept[static_cast<size_t>(slot)];
      out->positions[static_cast<size_t>((0 * B + b) * L + i)] = static_cast<int32_t>(t);
      out->positions[static_cast<size_t>((1 * B + b) * L + i)] = static_cast<int32_t>(h);
      out->positions[static_cast<size_t>((2 * B + b) * L + i)] = static_cast<int32_t>(w);
      max_pos = std::max(max_pos, std::max(t, std::max(h, w)));
    };
    for (size_t s = 0; s < kept.size();) {
      const int32_t kind = types[kept[s]];
      size_t e = s;
      while (e < kept.size() && types[kept[e]] == kind) ++e;
      const int64_t run = static_cast<int64_t>(e - s);
      if (kind == kTextToken) {
        for (int64_t j = 0; j < run; ++j)
          put(static_cast<int64_t>(s) + j, current + j, current + j, current + j);
        current += run;
      } else {
        const char* name = kind == kImageToken ? "image_grid_thw" : "video_grid_thw";
        if (next[kind] >= grids[kind].size())
          return make_error(StatusCode::kShapeMismatch, name, ": ", grids[kind].size(),
                            " grids (after splitting videos into frames for Qwen3-VL) for more ",
                            kind == kImageToken ? "image" : "video", " token runs (batch row ", b,
                            ")");
        const detail::VisionGrid& v = grids[kind][next[kind]++];
        const int64_t gh = v.grid.h / m, gw = v.grid.w / m, tokens = v.grid.t * gh * gw;
        int64_t last_frame = 0;  // (t - 1) * interval: up to 2^30 * 1e12, past int64
        if (!checked_mul(v.grid.t - 1, v.interval, &last_frame) || last_frame > INT32_MAX)
          return make_error(StatusCode::kInvalidArgument, name, " grid t = ", v.grid.t,
                            " with a frame interval of ", v.interval,
                            ": positions reach past 2^31 - 1");
        if (tokens != run)
          return make_error(StatusCode::kShapeMismatch, name, " grid (", v.grid.t, ", ", v.grid.h,
                            ", ", v.grid.w, ") gives ", tokens, " tokens: the run at batch row ", b,
                            ", token ", kept[s], " has ", run);
        int64_t slot = static_cast<int64_t>(s);
        for (int64_t f = 0; f < v.grid.t; ++f)
          for (int64_t r = 0; r < gh; ++r)
            for (int64_t c = 0; c < gw; ++c)
              put(slot++, current + f * v.interval, current + r, current + c);
        current += std::max(v.grid.h, v.grid.w) / m;
      }
      if (current > INT32_MAX || max_pos > INT32_MAX)
        return make_error(StatusCode::kInvalidArgument, "positions of batch row ", b, " reach ",
                          std::max(current, max_pos), ": allowed up to 2^31 - 1");
      s = e;
    }
    out->delta[static_cast<size_t>(b)] =
        kept.empty() ? 0 : static_cast<int32_t>(max_pos + 1 - static_cast<int64_t>(kept.size()));
  }
  *result = std::move(built);
  return Status();
}

}  // namespace qwen3vl::rope
