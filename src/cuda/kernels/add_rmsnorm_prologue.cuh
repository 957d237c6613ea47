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

// Which kernel runs it. kCta: one CTA per row, the row in shared memory (every case). kRegs: one
// small CTA per row (the fewest warps holding <= 8 chunks of 8 elements a thread), the row in
// registers -- only the W8A8 norm without the residual add (d == null; the W8A8 engines' norms),
// C % 8 == 0, C <= 16384, 16-byte aligned x and w, slot codes plain (dense, 2:4) or 6:8-lifted
// (add_rmsnorm_prologue_regs_supports); otherwise kUnsupported. kAuto: kRegs where it applies,
// else kCta. Same outputs bit for bit (the sum of squares in fp64 in another order: see
// row_ops.cuh). The engine reads SLIDESPARSE_NORM with norm_kernel_parse.
enum class NormKernel { kCta, kRegs, kAuto };
Status norm_kernel_parse(const char* name, NormKernel* out);  // "cta" | "regs" | "auto"
const char* norm_kernel_name(NormKernel k);
bool add_rmsnorm_prologue_regs_supports(int64_t C, const InputSlot& slot, bool with_add);

Status launch_add_rmsnorm_prologue(DType t, void* x, const void* d, const void* w, float eps,
                                   int64_t M, int64_t C, const InputSlot& slot, cudaStream_t stream,
                                   NormKernel kernel = NormKernel::kCta);

}  // namespace slidesparse::cuda::kernels
