// The static patterns: one row of key blocks at a time (row R of the NBk x NBk grid), packed into
// a BSR layout. Definitions follow DeepSpeed's sparsity_config.py (see variants/static_sparse.hpp).
#include <algorithm>
#include <sstream>

#include "qwen3vl/variants/static_sparse.hpp"

namespace qwen3vl {

const char* to_string(SparsePattern p) {
  switch (p) {
    case SparsePattern::kDense: return "dense";
    case SparsePattern::kSlidingWindow: return "sliding_window";
    case SparsePattern::kDilated: return "dilated";
    case SparsePattern::kLongformer: return "longformer";
    case SparsePattern::kBigBird: return "bigbird";
    case SparsePattern::kFixed: return "fixed";
    case SparsePattern::kVariable: return "variable";
  }
  return "unknown";
}

namespace {

std::string list_string(const std::vector<int32_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

std::string globals_string(const GlobalBlocks& g) {
  return "global " + list_string(g.global_block_indices) +
         (g.global_block_end_indices.empty() ? "" : "-" + list_string(g.global_block_end_indices));
}

Status check_at_least(const char* knob, int64_t value, int64_t low) {
  if (value < low)
    return make_error(StatusCode::kInvalidArgument, knob, " = ", value, ": must be >= ", low);
  return Status();
}

Status check_globals(const char* pattern, const GlobalBlocks& g) {
  const auto& starts = g.global_block_indices;
  const auto& ends = g.global_block_end_indices;
  if (!ends.empty() && ends.size() != starts.size())
    return make_error(
        StatusCode::kInvalidArgument, pattern, ".global.global_block_end_indices has ", ends.size(),
        " entries: must be empty or as many as global_block_indices (", starts.size(), ")");
  for (size_t i = 0; i < starts.size(); ++i) {
    if (starts[i] < 0)
      return make_error(StatusCode::kInvalidArgument, pattern, ".global.global_block_indices[", i,
                        "] = ", starts[i], ": must be >= 0");
    if (!ends.empty() && ends[i] <= starts[i])
      return make_error(StatusCode::kInvalidArgument, pattern, ".global.global_block_end_indices[",
                        i, "] = ", ends[i], ": must be > global_block_indices[", i,
                        "] = ", starts[i]);
  }
  return Status();
}

Status check_horizontal(const char* pattern, bool horizontal, bool unidirectional) {
  if (horizontal && unidirectional)
    return make_error(StatusCode::kInvalidArgument, pattern,
                      ".horizontal_global_attention = true: allowed only with bidirectional "
                      "attention (unidirectional = false)");
  return Status();
}

// Random generator: splitmix64, keyed by (seed, layout, row) so that rows are independent.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n] (the bias of the modulo is below 2^-40 for any grid here).
  int64_t up_to(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n + 1)); }
};

// Row R of the pattern over NBk = nb key blocks, for layout `head`: row[J] = 1 where visible.
class RowBuilder {
 public:
  RowBuilder(const StaticSparseConfig& c, int64_t head, int64_t nb)
      : c_(c), head_(head), nb_(nb), row_(static_cast<size_t>(nb)) {}

  const std::vector<uint8_t>& build(int64_t r) {
    std::fill(row_.begin(), row_.end(), 0);
    const bool uni = c_.unidirectional;
    switch (c_.pattern) {
      case SparsePattern::kDense: set(0, nb_); break;
      case SparsePattern::kSlidingWindow:
        band(r, c_.sliding_window.num_sliding_window_blocks / 2, uni);
        break;
      case SparsePattern::kDilated: dilated(r); break;
      case SparsePattern::kLongformer: {
        band(r, c_.longformer.num_sliding_window_blocks / 2, false);
        globals(r, c_.longformer.global, /*rows=*/true, /*columns_from_row=*/false);
        if (uni) tril(r);
        break;
      }
      case SparsePattern::kBigBird: {
        const BigBirdPattern& b = c_.bigbird;
        random(r, uni ? r + 1 : nb_, b.num_random_blocks);
        band(r, b.num_sliding_window_blocks / 2, false);
        const int64_t g = std::min<int64_t>(b.num_global_blocks, nb_);
        if (r < g) set(0, nb_);
        set(0, g);
        if (uni) tril(r);
        break;
      }
      case SparsePattern::kFixed: fixed(r); break;
      case SparsePattern::kVariable: {
        const VariablePattern& v = c_.variable;
        random(r, nb_, v.num_random_blocks);  // from all blocks even when unidirectional
        variable_window(r);
        globals(r, v.global, v.horizontal_global_attention, uni);
        break;
      }
    }
    return row_;
  }

 private:
  void set(int64_t j0, int64_t j1) {
    for (int64_t j = std::max<int64_t>(j0, 0); j < std::min(j1, nb_); ++j) row_[j] = 1;
  }
  void tril(int64_t r) { set_zero(r + 1, nb_); }
  void set_zero(int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) row_[j] = 0;
  }
  // J in [R - w, R] (unidirectional) or [R - w, R + w].
  void band(int64_t r, int64_t w, bool uni) { set(r - w, uni ? r + 1 : r + w + 1); }

  void random(int64_t r, int64_t population, int64_t count) {
    for (int32_t j : random_blocks(c_.seed, head_, r, population, count)) row_[j] = 1;
  }

  void dilated(int64_t r) {
    const DilatedPattern& d = c_.dilated;
    for (int64_t j = 0; j < nb_; ++j) {
      if (c_.unidirectional && j > r) break;
      const int64_t dist = j > r ? j - r : r - j;
      if (dist <= d.local_blocks ||
          (dist % d.dilation == 0 && (d.span_blocks == 0 || dist <= d.span_blocks)))
        row_[j] = 1;
    }
  }

  // Global blocks [s, e): rows (all columns) when `rows`, and columns for every row, or for rows
  // >= s when `columns_from_row`.
  void globals(int64_t r, const GlobalBlocks& g, bool rows, bool columns_from_row) {
    for (size_t i = 0; i < g.global_block_indices.size(); ++i) {
      const int64_t s = g.global_block_indices[i];
      if (s >= nb_) continue;
      const int64_t e = g.global_block_end_indices.empty()
                            ? s + 1
                            : std::min<int64_t>(g.global_block_end_indices[i], nb_);
      if (rows && r >= s && r < e) set(0, nb_);
      if (!columns_from_row || r >= s) set(s, e);
    }
  }

  void fixed(int64_t r) {
    const FixedPattern& f = c_.fixed;
    const bool uni = c_.unidirectional;
    const int64_t l = f.num_local_blocks, g = f.num_global_blocks;
    const int64_t w0 = r / l * l;  // non-overlapping windows
    set(w0, uni ? r + 1 : w0 + l);
    const int64_t first = l - (1 + head_ % f.num_different_global_patterns) * g;
    const int64_t full_end = nb_ - nb_ % l;
    const auto global = [&](int64_t s, int64_t e) {
      if (r >= (uni ? s : 0)) set(s, e);
      if (f.horizontal_global_attention && r >= s && r < e) set(0, nb_);
    };
    for (int64_t s = first; s < full_end; s += l) global(s, s + g);
    if (full_end < nb_) {  // a short final window
      const int64_t s = std::max<int64_t>(0, std::min(full_end + first, nb_ - g));
      global(s, s + g);
    }
  }

  void variable_window(int64_t r) {
    const std::vector<int32_t>& sizes = c_.variable.local_window_blocks;
    int64_t start = 0, end = -1;
    for (int32_t s : sizes) {
      if (r < start + s) {
        end = start + s;
        break;
      }
      start += s;
    }
    if (end < 0) {  // past the listed windows: the last size repeats
      const int64_t last = sizes.back();
      start += (r - start) / last * last;
      end = start + last;
    }
    set(start, c_.unidirectional ? r + 1 : end);
  }

  const StaticSparseConfig& c_;
  int64_t head_;
  int64_t nb_;
  std::vector<uint8_t> row_;
};

}  // namespace

std::string StaticSparseConfig::to_string() const {
  std::ostringstream s;
  s << qwen3vl::to_string(pattern) << "(";
  switch (pattern) {
    case SparsePattern::kDense: break;
    case SparsePattern::kSlidingWindow:
      s << "window " << sliding_window.num_sliding_window_blocks << ", ";
      break;
    case SparsePattern::kDilated:
      s << "local " << dilated.local_blocks << ", dilation " << dilated.dilation << ", span "
        << dilated.span_blocks << ", ";
      break;
    case SparsePattern::kLongformer:
      s << "window " << longformer.num_sliding_window_blocks << ", "
        << globals_string(longformer.global) << ", ";
      break;
    case SparsePattern::kBigBird:
      s << "random " << bigbird.num_random_blocks << ", window "
        << bigbird.num_sliding_window_blocks << ", global " << bigbird.num_global_blocks << ", ";
      break;
    case SparsePattern::kFixed:
      s << "local " << fixed.num_local_blocks << ", global " << fixed.num_global_blocks
        << (fixed.horizontal_global_attention ? ", horizontal" : "") << ", global patterns "
        << fixed.num_different_global_patterns << ", ";
      break;
    case SparsePattern::kVariable:
      s << "random " << variable.num_random_blocks << ", windows "
        << list_string(variable.local_window_blocks) << ", " << globals_string(variable.global)
        << (variable.horizontal_global_attention ? ", horizontal" : "") << ", ";
      break;
  }
  s << "block " << block << ", " << (unidirectional ? "unidirectional" : "bidirectional");
  if (different_layout_per_head) s << ", per head";
  if (pattern == SparsePattern::kBigBird || pattern == SparsePattern::kVariable)
    s << ", seed " << seed;
  s << ")";
  return s.str();
}

Status validate(const StaticSparseConfig& c) {
  if (c.block < 16 || c.block > 128 || c.block % 16 != 0)
    return make_error(StatusCode::kInvalidArgument, "block = ", c.block,
                      ": allowed 16..128, a multiple of 16");
  switch (c.pattern) {
    case SparsePattern::kDense: return Status();
    case SparsePattern::kSlidingWindow:
      return check_at_least("sliding_window.num_sliding_window_blocks",
                            c.sliding_window.num_sliding_window_blocks, 1);
    case SparsePattern::kDilated:
      QWEN3VL_RETURN_IF_ERROR(check_at_least("dilated.local_blocks", c.dilated.local_blocks, 0));
      QWEN3VL_RETURN_IF_ERROR(check_at_least("dilated.dilation", c.dilated.dilation, 1));
      return check_at_least("dilated.span_blocks", c.dilated.span_blocks, 0);
    case SparsePattern::kLongformer:
      QWEN3VL_RETURN_IF_ERROR(check_at_least("longformer.num_sliding_window_blocks",
                                             c.longformer.num_sliding_window_blocks, 1));
      return check_globals("longformer", c.longformer.global);
    case SparsePattern::kBigBird:
      QWEN3VL_RETURN_IF_ERROR(
          check_at_least("bigbird.num_random_blocks", c.bigbird.num_random_blocks, 0));
      QWEN3VL_RETURN_IF_ERROR(check_at_least("bigbird.num_sliding_window_blocks",
                                             c.bigbird.num_sliding_window_blocks, 1));
      return check_at_least("bigbird.num_global_blocks", c.bigbird.num_global_blocks, 0);
    case SparsePattern::kFixed: {
      const FixedPattern& f = c.fixed;
      QWEN3VL_RETURN_IF_ERROR(check_at_least("fixed.num_local_blocks", f.num_local_blocks, 1));
      QWEN3VL_RETURN_IF_ERROR(check_at_least("fixed.num_global_blocks", f.num_global_blocks, 1));
      if (f.num_local_blocks % f.num_global_blocks != 0)
        return make_error(
            StatusCode::kInvalidArgument, "fixed.num_local_blocks = ", f.num_local_blocks,
            ": must be a multiple of fixed.num_global_blocks = ", f.num_global_blocks);
      QWEN3VL_RETURN_IF_ERROR(
          check_horizontal("fixed", f.horizontal_global_attention, c.unidirectional));
      const int32_t most = f.num_local_blocks / f.num_global_blocks;
      if (f.num_different_global_patterns < 1 || f.num_different_global_patterns > most)
        return make_error(StatusCode::kInvalidArgument,
                          "fixed.num_different_global_patterns = ", f.num_different_global_patterns,
                          ": allowed 1..", most, " (num_local_blocks / num_global_blocks)");
      if (f.num_different_global_patterns > 1 && !c.different_layout_per_head)
        return make_error(StatusCode::kInvalidArgument,
                          "fixed.num_different_global_patterns = ", f.num_different_global_patterns,
                          ": more than 1 needs different_layout_per_head = true");
      return Status();
    }
    case SparsePattern::kVariable: {
      const VariablePattern& v = c.variable;
      QWEN3VL_RETURN_IF_ERROR(check_at_least("variable.num_random_blocks", v.num_random_blocks, 0));
      if (v.local_window_blocks.empty())
        return make_error(StatusCode::kInvalidArgument,
                          "variable.local_window_blocks = []: needs at least one window size");
      for (size_t i = 0; i < v.local_window_blocks.size(); ++i)
        if (v.local_window_blocks[i] < 1)
          return make_error(StatusCode::kInvalidArgument, "variable.local_window_blocks[", i,
                            "] = ", v.local_window_blocks[i], ": must be >= 1");
      QWEN3VL_RETURN_IF_ERROR(check_globals("variable", v.global));
      return check_horizontal("variable", v.horizontal_global_attention, c.unidirectional);
    }
  }
  return make_error(StatusCode::kInvalidArgument, "pattern = ", static_cast<int>(c.pattern),
                    ": not a SparsePattern");
}

std::vector<int32_t> random_blocks(uint64_t seed, int64_t layout, int64_t row, int64_t population,
                                   int64_t count) {
  std::vector<int32_t> picked;
  if (population <= 0 || count <= 0) return picked;
  if (count >= population) {
    for (int64_t j = 0; j < population; ++j) picked.push_back(static_cast<int32_t>(j));
    return picked;
  }
  SplitMix64 key{seed};
  key.state ^= SplitMix64{static_cast<uint64_t>(layout) * 0x100000001B3ull + 1}.next();
  SplitMix64 rng{key.next() ^ SplitMix64{static_cast<uint64_t>(row) + 0x51ED270B}.next()};
  // Floyd's sampling: `count` distinct values with one draw each.
  for (int64_t j = population - count; j < population; ++j) {
    const int32_t t = static_cast<int32_t>(rng.up_to(j));
    const bool seen = std::find(picked.begin(), picked.end(), t) != picked.end();
    picked.push_back(seen ? static_cast<int32_t>(j) : t);
  }
  std::sort(picked.begin(), picked.end());
  return picked;
}

Status build_static_sparse_layout(const StaticSparseConfig& config, int64_t max_q, int64_t max_k,
                                  int64_t kv_heads, BlockLayoutData* out) {
  QWEN3VL_RETURN_IF_ERROR(validate(config));
  const int64_t b = config.block;
  if (max_q < 0 || max_k < max_q || (max_k - max_q) % b != 0)
    return make_error(StatusCode::kUnsupported, "max_q = ", max_q, ", max_k = ", max_k,
                      ": static patterns need 0 <= max_q <= max_k with max_k - max_q a multiple "
                      "of the block (",
                      b, "), so that query blocks align with key blocks");
  if (kv_heads < 1)
    return make_error(StatusCode::kInvalidArgument, "kv_heads = ", kv_heads, ": must be >= 1");

  BlockLayoutData d;
  d.block_q = d.block_k = config.block;
  d.layouts = config.different_layout_per_head ? kv_heads : 1;
  d.row_blocks = (max_q + b - 1) / b;
  d.col_blocks = (max_k + b - 1) / b;
  const int64_t shift = d.col_blocks - d.row_blocks;
  d.indptr.assign(static_cast<size_t>(d.layouts * (d.row_blocks + 1)), 0);
  std::vector<std::vector<int32_t>> columns(static_cast<size_t>(d.layouts));
  for (int64_t l = 0; l < d.layouts; ++l) {
    RowBuilder rows(config, l, d.col_blocks);
    int32_t* ptr = d.indptr.data() + l * (d.row_blocks + 1);
    for (int64_t i = 0; i < d.row_blocks; ++i) {
      const std::vector<uint8_t>& row = rows.build(i + shift);
      for (int64_t j = 0; j < d.col_blocks; ++j)
        if (row[j]) columns[l].push_back(static_cast<int32_t>(j));
      ptr[i + 1] = static_cast<int32_t>(columns[l].size());
    }
    d.capacity = std::max<int64_t>(d.capacity, static_cast<int64_t>(columns[l].size()));
  }
  d.indices.assign(static_cast<size_t>(d.layouts * d.capacity), 0);
  for (int64_t l = 0; l < d.layouts; ++l)
    std::copy(columns[l].begin(), columns[l].end(), d.indices.begin() + l * d.capacity);
  *out = std::move(d);
  return Status();
}

}  // namespace qwen3vl
