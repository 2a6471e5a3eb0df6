// The Arena base: the K and V views over its units (include/qwen3vl/lifecycle/arena.hpp).
#include "qwen3vl/lifecycle/arena.hpp"

#include "qwen3vl/core/checked_math.hpp"

namespace qwen3vl::lifecycle {

size_t ArenaShape::unit_bytes() const {
  int64_t elems = 0, bytes = 0;
  if (!checked_mul(block_size, kv_heads * head_dim, &elems) ||
      !checked_mul(2 * elems, static_cast<int64_t>(size_of(dtype)), &bytes))
    return 0;
  return static_cast<size_t>(bytes);
}

Arena::Arena(const ArenaShape& shape, void* base) : shape_(shape) {
  const int64_t half = shape.block_size * shape.kv_heads * shape.head_dim;
  const int64_t row = shape.kv_heads * shape.head_dim;
  for (int h = 0; h < 2; ++h)
    (h == 0 ? k_ : v_) = TensorView::strided(
        static_cast<unsigned char*>(base) + static_cast<size_t>(h * half) * size_of(shape.dtype),
        shape.dtype, {shape.units, shape.block_size, shape.kv_heads, shape.head_dim},
        {2 * half, row, shape.head_dim, 1});
}

}  // namespace qwen3vl::lifecycle
