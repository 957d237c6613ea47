// Fused SwiGLU + quantize / lift: one CTA per slot row (row_ops.cuh).
#include "cuda/kernels/row_ops.cuh"
#include "cuda/kernels/silu_mul_prologue.cuh"

namespace slidesparse::cuda::kernels {

Status launch_silu_mul_prologue(DType t, const void* gu, int64_t ld, int64_t M, int64_t F,
                                const InputSlot& slot, cudaStream_t stream) {
  const std::string op = "silu_mul_prologue";
  SS_RETURN_IF_ERROR(check_16bit(op, t));
  if (M < 0 || F <= 0 || ld < 2 * F || M > 0x7fffffff || F > 0x3fffffff)
    return invalid_argument(op + ": bad sizes M=" + std::to_string(M) + " F=" + std::to_string(F) +
                            " ld=" + std::to_string(ld) + " (need ld >= 2F)");
  if (M > 0 && !gu) return invalid_argument(op + ": gu must not be null");
  RowArgs a;
  int mode = 0;
  SS_RETURN_IF_ERROR(row_slot_setup(op, t, M, F, slot, &a, &mode));
  a.gu = gu;
  a.ld = ld;
  a.M = M;
  a.C = static_cast<int>(F);
  a.vec = F % 8 == 0 && ld % 8 == 0 && aligned16(gu);
  return launch_row_slot<kOpSiluMul>(t, a, mode, slot.quant == QuantMode::kFp8, slot.M_pad, stream);
}

}  // namespace slidesparse::cuda::kernels
