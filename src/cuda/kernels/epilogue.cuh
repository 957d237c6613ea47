// Dequant + bias epilogue: y[m, n] = out_dtype(((float)acc[m, n] * s_x[m]) * s_w[n] + bias[n]),
// evaluated in IEEE fp32 in exactly this order (no FMA contraction), rounded to nearest even.
// acc: [M, ld_acc] I32, F32, BF16 or F16 (the GEMM's column-major N x M output = row-major
// [M, ld_acc]); y: [M, ld_y] BF16 or F16. s_x, s_w, bias may each be null (factor 1 / no bias).
// In place (acc == y, same dtype and ld) is allowed.
// residual (optional, [M, ld_y] in out_t): y[m, n] = out_dtype(residual[m, n] + that rounded
// value) — the residual add of a transformer sublayer after its output is rounded; residual may be
// y (the residual stream updated in place).
#pragma once

#include <cuda_runtime.h>

#include "slidesparse/dtype.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

Status launch_epilogue(DType acc_t, const void* acc, int64_t ld_acc, const float* s_x,
                       const float* s_w, const float* bias, DType out_t, void* y, int64_t ld_y,
                       int64_t M, int64_t N, cudaStream_t stream, const void* residual = nullptr);

}  // namespace slidesparse::cuda::kernels
