// Dense fp32 GEMM on the CPU (OpenBLAS). Layout: x [M, K], w [N, K] row-major, y [M, N].
#pragma once

#include <cstdint>

namespace slidesparse::cpu {

void gemm_f32(const float* x, const float* w, float* y, int64_t M, int64_t N, int64_t K,
              bool accumulate = false);

}  // namespace slidesparse::cpu
