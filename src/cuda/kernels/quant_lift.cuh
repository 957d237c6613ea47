// Fused quantize + lift (the sparse W8A8 path): x [M, K] bf16/fp16 -> lifted codes
// [M_pad, K_out] int8/e4m3 (X'[:, b*4(N-1) + 4j + t] = q(X[:, b*m + 2j + t])) with per-token
// scales [M] computed over the unlifted row. Zero where the source is >= K, in column padding and
// in rows >= M. K_out >= p.k_lifted(K), K_out % 16 == 0.
#pragma once

#include <cuda_runtime.h>

#include "slidesparse/dtype.h"
#include "slidesparse/pattern.h"
#include "slidesparse/quant.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

Status launch_quant_lift(DType in, QuantMode q, Pattern p, const void* x, int64_t M, int64_t K,
                         void* out, int64_t M_pad, int64_t K_out, float* scales,
                         cudaStream_t stream);

}  // namespace slidesparse::cuda::kernels
