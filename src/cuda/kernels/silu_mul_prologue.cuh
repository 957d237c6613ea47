// SwiGLU fused with the down projection's prologue: the T-rounded row of launch_silu_mul (same
// SiluMath) goes straight into the layer's InputSlot (GpuLinear::input_slot), bit-identical to
// launch_silu_mul followed by launch_quantize / launch_quant_lift / launch_lift: int8/e4m3 codes
// [M_pad, K_out] + per-token scales [M] (W8A8), or the lifted T values (sparse W16A16); rows
// M..M_pad-1 and the column padding zero. gu: [M, ld] T (BF16/F16), ld >= 2F. Then call
// forward_prepared.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels/silu_mul.cuh"
#include "slidesparse/dtype.h"
#include "slidesparse/linear.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

Status launch_silu_mul_prologue(DType t, const void* gu, int64_t ld, int64_t M, int64_t F,
                                const InputSlot& slot, cudaStream_t stream,
                                SiluMath math = SiluMath::kFast);

}  // namespace slidesparse::cuda::kernels
