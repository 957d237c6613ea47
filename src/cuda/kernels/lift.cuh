// Lift only (the sparse W16A16 path): x [M, K] bf16/fp16 -> X' [M_pad, K_out] of the same dtype,
// X'[:, b*4(N-1) + 4j + t] = X[:, b*m + 2j + t]; zero where the source is >= K, in column padding
// and in rows >= M. K_out >= p.k_lifted(K), K_out % 8 == 0.
#pragma once

#include <cuda_runtime.h>

#include "slidesparse/dtype.h"
#include "slidesparse/pattern.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

Status launch_lift(DType t, Pattern p, const void* x, int64_t M, int64_t K, void* out,
                   int64_t M_pad, int64_t K_out, cudaStream_t stream);

}  // namespace slidesparse::cuda::kernels
