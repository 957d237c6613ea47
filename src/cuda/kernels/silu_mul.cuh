// SwiGLU of the fused gate|up rows: out[m, f] = T(T(silu(g)) * u) with g = gu[m, f],
// u = gu[m, F + f], silu(g) = g / (1 + exp(-g)) in fp32 (HF: act_fn(gate) rounded, then * up).
// SiluMath::kExact: bit-identical to the CPU reference exact::silu_f32 (exact_math.h: exp within
// 1 ulp, the same bits on host and device). SiluMath::kFast (default): the SFU's exp and
// reciprocal, T(silu(g)) within 1 ulp of T of the reference (row_ops.cuh: silu_fast), about half
// the instructions per element. gu: [M, ld] T (ld >= 2F); out: [M, F] T.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "slidesparse/dtype.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

enum class SiluMath { kFast, kExact };
const char* silu_math_name(SiluMath m);
// "fast" | "exact" (the engine reads SLIDESPARSE_SWIGLU with it).
Status silu_math_parse(const char* name, SiluMath* out);

Status launch_silu_mul(DType t, const void* gu, int64_t ld, int64_t M, int64_t F, void* out,
                       cudaStream_t stream, SiluMath math = SiluMath::kFast);

}  // namespace slidesparse::cuda::kernels
