// Fused residual add + RMSNorm + quantize / lift: one CTA per slot row (row_ops.cuh).
#include "cuda/kernels/add_rmsnorm_prologue.cuh"
#include "cuda/kernels/row_ops.cuh"

namespace slidesparse::cuda::kernels {

Status launch_add_rmsnorm_prologue(DType t, void* x, const void* d, const void* w, float eps,
                                   int64_t M, int64_t C, const InputSlot& slot,
                                   cudaStream_t stream) {
  const std::string op = "add_rmsnorm_prologue";
  SS_RETURN_IF_ERROR(check_16bit(op, t));
  if (M < 0 || C <= 0 || M > 0x7fffffff || C > 0x3fffffff)
    return invalid_argument(op + ": bad sizes M=" + std::to_string(M) + " C=" + std::to_string(C));
  if ((M > 0 && !x) || !w) return invalid_argument(op + ": x and w must not be null");
  RowArgs a;
  int mode = 0;
  SS_RETURN_IF_ERROR(row_slot_setup(op, t, M, C, slot, &a, &mode));
  a.x = x;
  a.d = d;
  a.w = w;
  a.eps = eps;
  a.M = M;
  a.C = static_cast<int>(C);
  a.vec = C % 8 == 0 && aligned16(x) && (!d || aligned16(d)) && aligned16(w);
  return launch_row_slot<kOpAddRmsNorm>(t, a, mode, slot.quant == QuantMode::kFp8, slot.M_pad,
                                        stream);
}

}  // namespace slidesparse::cuda::kernels
