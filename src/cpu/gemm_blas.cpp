// Dense fp32 GEMM on the CPU through OpenBLAS: y[M, N] = x[M, K] * w[N, K]^T (+ y if accumulate).
#include "cpu/gemm_blas.h"

#include <cblas.h>

namespace slidesparse::cpu {

void gemm_f32(const float* x, const float* w, float* y, int64_t M, int64_t N, int64_t K,
              bool accumulate) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(N),
              static_cast<int>(K), 1.0f, x, static_cast<int>(K), w, static_cast<int>(K),
              accumulate ? 1.0f : 0.0f, y, static_cast<int>(N));
}

}  // namespace slidesparse::cpu
