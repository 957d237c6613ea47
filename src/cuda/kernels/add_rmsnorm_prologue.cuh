// Residual add + RMSNorm fused with the next linear layer's prologue: the T-rounded normalized row
// of launch_add_rmsnorm goes straight into the layer's InputSlot (GpuLinear::input_slot) as the
// operand that launch_quantize / launch_quant_lift / launch_lift would have produced from it, bit
// for bit: int8/e4m3 codes [M_pad, K_out] + per-token scales [M] (W8A8, plain or lifted), or the
// lifted T values (sparse W16A16). Rows M..M_pad-1 and the column padding are zero. The residual
// x = T(x + d) is still written (when d != null). Then call GpuLinear::forward_prepared.
// x, d: [M, C] T (BF16/F16); w: [C] T.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "slidesparse/dtype.h"
#include "slidesparse/linear.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

Status launch_add_rmsnorm_prologue(DType t, void* x, const void* d, const void* w, float eps,
                                   int64_t M, int64_t C, const InputSlot& slot,
                                   cudaStream_t stream);

}  // namespace slidesparse::cuda::kernels
