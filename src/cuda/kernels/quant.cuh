// Quantize only (the dense W8A8 path): x [M, K] bf16/fp16 -> codes [M_pad, K_out] int8/e4m3 with
// per-token scales [M]; columns >= K and rows >= M are zero. K_out % 16 == 0.
#pragma once

#include <cuda_runtime.h>

#include "slidesparse/dtype.h"
#include "slidesparse/quant.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

Status launch_quantize(DType in, QuantMode q, const void* x, int64_t M, int64_t K, void* out,
                       int64_t M_pad, int64_t K_out, float* scales, cudaStream_t stream);

}  // namespace slidesparse::cuda::kernels
