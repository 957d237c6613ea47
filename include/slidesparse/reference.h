// Reference GEMMs and the reference SlideSparse linear layer (CPU, exact where arithmetic allows).
// Layout: X [M, K] row-major, W [N, K] row-major, Y = X * W^T [M, N].
#pragma once

#include <cstdint>
#include <vector>

#include "slidesparse/nm_tensor.h"
#include "slidesparse/quant.h"
#include "slidesparse/status.h"

namespace slidesparse {

// Naive fp32 (fp64 accumulate if `acc64`) GEMM: y[M, N] = x[M, K] * w[N, K]^T.
void gemm_ref_f32(const float* x, const float* w, float* y, int64_t M, int64_t N, int64_t K,
                  bool acc64 = false);
// Exact int8 x int8 -> int32.
void gemm_ref_i8(const int8_t* x, const int8_t* w, int32_t* y, int64_t M, int64_t N, int64_t K);
// fp8 e4m3 codes x codes -> fp32 accumulate (products are exact in fp32; sums in fp64 then fp32).
void gemm_ref_e4m3(const uint8_t* x, const uint8_t* w, float* y, int64_t M, int64_t N, int64_t K);

// Reference SlideSparse linear: y = dequant(lift(quant(x)) * slide(Wq)^T) (+ bias).
// x: [M, K] fp32 (values representable in the model dtype); y: [M, N] fp32 before the final
// rounding to the output dtype. quant none: fp32 GEMM over lifted x and slided w.
// int8: int32 accumulators, y = acc * s_x[m] * s_w[n] + bias[n] in fp32, evaluated left to right
// ((acc * s_x) * s_w) + bias. fp8: acc = exact e4m3 products summed in fp64, rounded to fp32,
// then the same epilogue. quant none: sum in fp64, rounded to fp32, + bias. Activation scales are
// per token over the K real columns (quant.h rule). The compact weight is nm_verify'd first.
// If acc_i32 != nullptr (int8 only) the raw int32 accumulators [M, N] are written there too.
Status reference_sparse_linear(const float* x, int64_t M, const NmTensor& w, const float* bias,
                               float* y, int32_t* acc_i32 = nullptr);

// Reference dense W8A8/W16 linear on a dense (pruned) weight, same arithmetic without the slide:
// used to prove the slide is lossless.
Status reference_dense_linear(const float* x, int64_t M, const float* w, int64_t N, int64_t K,
                              QuantMode q, const float* bias, float* y, int32_t* acc_i32 = nullptr);

}  // namespace slidesparse
