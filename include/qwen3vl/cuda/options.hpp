// Options shared by the CUDA variants. Plain declarations: no CUDA header needed to include it.
#pragma once

namespace qwen3vl {

struct CudaOptions {
  int device = -1;  // CUDA device ordinal; -1: the device current when the variant is created
};

}  // namespace qwen3vl
