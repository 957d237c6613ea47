// SwiGLU of the fused gate|up rows: out[m, f] = T(T(silu(g)) * u) with g = gu[m, f],
// u = gu[m, F + f], silu(g) = g / (1 + exp(-g)) in fp32 (HF: act_fn(gate) rounded, then * up);
// exp is exact::exp_f32 (exact_math.h: <= 1 ulp, the same bits on host and device).
// gu: [M, ld] T (ld >= 2F); out: [M, F] T.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "slidesparse/dtype.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

Status launch_silu_mul(DType t, const void* gu, int64_t ld, int64_t M, int64_t F, void* out,
                       cudaStream_t stream);

}  // namespace slidesparse::cuda::kernels
