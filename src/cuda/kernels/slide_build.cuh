// Load-time build of the slided weight operand W' [N_pad, K_out] (row-major, 2:4 along K) from
// the compact n:m tensors of a checkpoint: values [N, blocks*n] (1- or 2-byte elements, the n
// selected values of each block in ascending position order) and masks [N, blocks] (u16, bit i =
// position i selected). Placement rule of DESIGN.md (first window with < 2 placed values); zero
// values (including -0.0) are not placed. Rows >= N and columns >= k_lifted(K) are zero.
// Masks must be verified (popcount == n, n <= m - 2) before the launch.
#pragma once

#include <cuda_runtime.h>

#include "slidesparse/dtype.h"
#include "slidesparse/pattern.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

// t: BF16, F16, I8 or F8_E4M3 (the value dtype of the NmTensor).
Status launch_slide_build(DType t, Pattern p, const void* values, const uint16_t* masks, int64_t N,
                          int64_t K, void* out, int64_t N_pad, int64_t K_out, cudaStream_t stream);

}  // namespace slidesparse::cuda::kernels
