// The (t, h, w) patch grid of one image or video, as the Qwen-VL processors report it
// (image_grid_thw / video_grid_thw: patches before the spatial merge).
#pragma once

#include <cstdint>

namespace qwen3vl::rope {

struct GridThw {
  int64_t t = 1, h = 0, w = 0;
};

}  // namespace qwen3vl::rope
