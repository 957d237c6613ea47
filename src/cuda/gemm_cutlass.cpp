// Argument checks and dtype dispatch of the CUTLASS GEMMs (gemm_cutlass.h). Without
// -DSLIDESPARSE_CUTLASS=ON every factory says kUnsupported.
#include "cuda/gemm_cutlass.h"

#include <string>

#include "cuda/cuda_check.h"
#ifdef SLIDESPARSE_WITH_CUTLASS
#include "cuda/cutlass/factories.h"
#endif

namespace slidesparse::cuda {
namespace {

Status check_common(const char* what, DType in, int64_t N, int64_t K_pad) {
  if (in != DType::kI8 && in != DType::kF8E4M3)
    return unsupported(std::string(what) + ": dtype " + dtype_name(in) +
                       " not supported (expected I8 or F8_E4M3)");
  if (N <= 0 || K_pad <= 0 || K_pad % 64 || N > (int64_t{1} << 30) || K_pad > (int64_t{1} << 30))
    return invalid_argument(std::string(what) + ": N=" + std::to_string(N) +
                            " must be positive and K_pad=" + std::to_string(K_pad) +
                            " a positive multiple of 64");
#ifndef SLIDESPARSE_WITH_CUTLASS
  return unsupported(
      std::string(what) +
      ": this build has no CUTLASS kernels (configure with -DSLIDESPARSE_CUTLASS=ON)");
#else
  int sm = 0;
  SS_RETURN_IF_ERROR(check_device(&sm));
  if (sm != 90)
    return unsupported(std::string(what) +
                       ": the kernels are built for sm_90a only, device is sm_" +
                       std::to_string(sm));
  return Status::Ok();
#endif
}

}  // namespace

bool cutlass_built() {
#ifdef SLIDESPARSE_WITH_CUTLASS
  return true;
#else
  return false;
#endif
}

Expected<std::unique_ptr<GemmCutlass>> GemmCutlass::create_sparse(DType in, int64_t N,
                                                                  int64_t K_pad, int64_t ld_w,
                                                                  const void* w_dense,
                                                                  cudaStream_t stream) {
  SS_RETURN_IF_ERROR(check_common("CUTLASS 2:4 GEMM", in, N, K_pad));
  if (ld_w < K_pad || ld_w % 16 || !w_dense)
    return invalid_argument("CUTLASS 2:4 GEMM: weight ld=" + std::to_string(ld_w) +
                            " must be >= K_pad and a multiple of 16");
#ifdef SLIDESPARSE_WITH_CUTLASS
  if (in == DType::kI8) return cutlass_sparse_i8(N, K_pad, ld_w, w_dense, stream);
  return cutlass_sparse_f8(N, K_pad, ld_w, w_dense, stream);
#else
  return unsupported("unreachable");
#endif
}

Expected<std::unique_ptr<GemmCutlass>> GemmCutlass::create_dense(DType in, int64_t N, int64_t K_pad,
                                                                 const void* w) {
  SS_RETURN_IF_ERROR(check_common("CUTLASS dense GEMM", in, N, K_pad));
  if (!w) return invalid_argument("CUTLASS dense GEMM: null weight");
#ifdef SLIDESPARSE_WITH_CUTLASS
  if (in == DType::kI8) return cutlass_dense_i8(N, K_pad, w);
  return cutlass_dense_f8(N, K_pad, w);
#else
  return unsupported("unreachable");
#endif
}

Status GemmCutlass::can_implement(int64_t M, int64_t ldd, bool fused) const {
  const int64_t al = fused ? 8 : 4;
  if (M <= 0 || M > (int64_t{1} << 30))
    return invalid_argument("CUTLASS GEMM: M=" + std::to_string(M) + " must be in [1, 2^30]");
  if (ldd < N_gemm() || ldd % al)
    return invalid_argument("CUTLASS GEMM: ldd=" + std::to_string(ldd) + " must be >= " +
                            std::to_string(N_gemm()) + " and a multiple of " + std::to_string(al));
  return Status::Ok();
}

}  // namespace slidesparse::cuda
