// Residual add + RMSNorm with Hugging Face's arithmetic in the model dtype T (BF16 or F16):
//   if d != null:  x[m, :] = T(x + d)                    (the residual stream, updated in place)
//   y[m, :] = T(w * T(x * rsqrt(mean(x^2) + eps)))      (x read as fp32, mean over C in fp32)
// Exactly: sum of x^2 in fp64 (each square exact, so the order does not matter to fp32
// resolution), mean = fp32(sum / C), rsqrt = 1 / sqrt(mean + eps) as two IEEE fp32 operations:
// reproducible bit for bit on the host (HF's fp32 sum and rsqrtf can differ by an fp32 ulp).
// x, d, y: [M, C] row-major (row stride C); w: [C] T. y must not alias x or d.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "slidesparse/dtype.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

Status launch_add_rmsnorm(DType t, void* x, const void* d, const void* w, float eps, void* y,
                          int64_t M, int64_t C, cudaStream_t stream);

}  // namespace slidesparse::cuda::kernels
