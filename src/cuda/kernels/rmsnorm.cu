// Residual add + RMSNorm: one CTA per row (16-byte loads when C % 8 == 0), the row kept in shared
// memory between the fp64 sum of squares and the normalization (row_ops.cuh).
#include "cuda/kernels/rmsnorm.cuh"
#include "cuda/kernels/row_ops.cuh"

namespace slidesparse::cuda::kernels {

Status launch_add_rmsnorm(DType t, void* x, const void* d, const void* w, float eps, void* y,
                          int64_t M, int64_t C, cudaStream_t stream) {
  SS_RETURN_IF_ERROR(check_16bit("add_rmsnorm", t));
  if (M < 0 || C <= 0 || M > 0x7fffffff || C > 0x3fffffff)
    return invalid_argument("add_rmsnorm: bad sizes M=" + std::to_string(M) +
                            " C=" + std::to_string(C));
  if (!x || !w || !y) return invalid_argument("add_rmsnorm: x, w and y must not be null");
  if (row_smem_bytes(C, kRowPlain) > kRowMaxSmem)
    return unsupported("add_rmsnorm: C=" + std::to_string(C) + " exceeds the shared-memory row");
  if (M == 0) return Status::Ok();
  RowArgs a;
  a.x = x;
  a.d = d;
  a.w = w;
  a.eps = eps;
  a.y = y;
  a.M = M;
  a.C = static_cast<int>(C);
  a.vec = C % 8 == 0 && aligned16(x) && (!d || aligned16(d)) && aligned16(w) && aligned16(y);
  return t == DType::kBF16
             ? launch_row_t<__nv_bfloat16, kOpAddRmsNorm, kRowPlain, false>(a, M, stream)
             : launch_row_t<__half, kOpAddRmsNorm, kRowPlain, false>(a, M, stream);
}

}  // namespace slidesparse::cuda::kernels
