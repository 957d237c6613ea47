// Reference GEMMs (naive loops: the ground truth every backend is tested against) and the
// reference SlideSparse linear layer: y = dequant(lift(quant(x)) * slide(Wq)^T) (+ bias).
#include "slidesparse/reference.h"

#include <algorithm>
#include <string>
#include <vector>

#include "slidesparse/slide.h"

namespace slidesparse {

void gemm_ref_f32(const float* x, const float* w, float* y, int64_t M, int64_t N, int64_t K,
                  bool acc64) {
  for (int64_t i = 0; i < M; ++i) {
    const float* xr = x + i * K;
    for (int64_t j = 0; j < N; ++j) {
      const float* wr = w + j * K;
      if (acc64) {
        double acc = 0.0;
        for (int64_t k = 0; k < K; ++k) acc += static_cast<double>(xr[k]) * wr[k];
        y[i * N + j] = static_cast<float>(acc);
      } else {
        float acc = 0.0f;
        for (int64_t k = 0; k < K; ++k) acc += xr[k] * wr[k];
        y[i * N + j] = acc;
      }
    }
  }
}

void gemm_ref_i8(const int8_t* x, const int8_t* w, int32_t* y, int64_t M, int64_t N, int64_t K) {
  for (int64_t i = 0; i < M; ++i) {
    const int8_t* xr = x + i * K;
    for (int64_t j = 0; j < N; ++j) {
      const int8_t* wr = w + j * K;
      int32_t acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += static_cast<int32_t>(xr[k]) * wr[k];
      y[i * N + j] = acc;
    }
  }
}

void gemm_ref_e4m3(const uint8_t* x, const uint8_t* w, float* y, int64_t M, int64_t N, int64_t K) {
  float lut[256];
  for (int c = 0; c < 256; ++c) lut[c] = e4m3_to_float(static_cast<uint8_t>(c));
  for (int64_t i = 0; i < M; ++i) {
    const uint8_t* xr = x + i * K;
    for (int64_t j = 0; j < N; ++j) {
      const uint8_t* wr = w + j * K;
      double acc = 0.0;
      // Each product of two e4m3 values is exact in fp32 (4-bit significands, exponents in range).
      for (int64_t k = 0; k < K; ++k) acc += static_cast<double>(lut[xr[k]] * lut[wr[k]]);
      y[i * N + j] = static_cast<float>(acc);
    }
  }
}

namespace {

Status check_linear_args(const char* what, const float* x, int64_t M, int64_t N, int64_t K,
                         const float* y) {
  if (M < 0 || N < 0 || K < 0) {
    return invalid_argument(std::string(what) +
                            ": expected non-negative M, N, K, got M=" + std::to_string(M) +
                            " N=" + std::to_string(N) + " K=" + std::to_string(K));
  }
  if ((M > 0 && K > 0 && x == nullptr) || (M > 0 && N > 0 && y == nullptr)) {
    return invalid_argument(std::string(what) + ": null x or y");
  }
  return Status::Ok();
}

// y = acc * s_x[m] * s_w[n] + bias[n], fp32, left to right: what the GPU epilogue computes.
template <class Acc>
void dequant_epilogue(const Acc* acc, const float* sx, const float* sw, const float* bias, float* y,
                      int64_t M, int64_t N) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      float v = static_cast<float>(acc[i * N + j]) * sx[i] * sw[j];
      if (bias) v += bias[j];
      y[i * N + j] = v;
    }
  }
}

// The quantized GEMM (int8 or fp8) of x and a weight of codes, both [*, Kx], given row scales.
void quantized_gemm(QuantMode q, const void* xq, const float* sx, const void* wq, const float* sw,
                    int64_t M, int64_t N, int64_t Kx, const float* bias, float* y,
                    int32_t* acc_i32) {
  if (q == QuantMode::kInt8) {
    std::vector<int32_t> acc(static_cast<size_t>(M * N));
    gemm_ref_i8(static_cast<const int8_t*>(xq), static_cast<const int8_t*>(wq), acc.data(), M, N,
                Kx);
    if (acc_i32) std::copy(acc.begin(), acc.end(), acc_i32);
    dequant_epilogue(acc.data(), sx, sw, bias, y, M, N);
  } else {
    std::vector<float> acc(static_cast<size_t>(M * N));
    gemm_ref_e4m3(static_cast<const uint8_t*>(xq), static_cast<const uint8_t*>(wq), acc.data(), M,
                  N, Kx);
    dequant_epilogue(acc.data(), sx, sw, bias, y, M, N);
  }
}

void add_bias(float* y, const float* bias, int64_t M, int64_t N) {
  if (!bias) return;
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) y[i * N + j] += bias[j];
  }
}

}  // namespace

Status reference_sparse_linear(const float* x, int64_t M, const NmTensor& w, const float* bias,
                               float* y, int32_t* acc_i32) {
  SS_RETURN_IF_ERROR(nm_verify(w));
  const int64_t N = w.N, K = w.K;
  SS_RETURN_IF_ERROR(check_linear_args("reference sparse linear", x, M, N, K, y));
  const QuantMode q = w.quant();
  if (acc_i32 && q != QuantMode::kInt8) {
    return invalid_argument("reference sparse linear: int32 accumulators requested for a " +
                            std::string(quant_mode_name(q)) + " weight (int8 only)");
  }
  const Pattern p = w.pattern;
  const int64_t Kl = p.k_lifted(K);
  const DType t = w.value_dtype;
  const size_t es = dtype_size(t);

  // Weight: compact -> dense codes [N, K] -> slided [N, K'].
  std::vector<uint8_t> wd(static_cast<size_t>(N * K) * es);
  nm_unpack(w, wd.data());
  std::vector<uint8_t> ws(static_cast<size_t>(N * Kl) * es);
  SS_RETURN_IF_ERROR(slide_weights(t, wd.data(), N, K, p, ws.data(), Kl));

  if (q == QuantMode::kNone) {
    // Stored bf16/fp16 values are what they are: converted to fp32, nothing else rounded.
    std::vector<float> wf(static_cast<size_t>(N * Kl));
    SS_RETURN_IF_ERROR(convert_to_f32(t, ws.data(), wf.data(), N * Kl));
    std::vector<float> xl(static_cast<size_t>(M * Kl));
    SS_RETURN_IF_ERROR(lift_activations(DType::kF32, x, M, K, p, xl.data(), Kl));
    gemm_ref_f32(xl.data(), wf.data(), y, M, N, Kl, /*acc64=*/true);
    add_bias(y, bias, M, N);
    return Status::Ok();
  }
  // Per-token activation quantization over the K real columns, then the lift of the codes.
  std::vector<uint8_t> xq(static_cast<size_t>(M * K));
  std::vector<float> sx(static_cast<size_t>(M));
  quantize_rows(q, x, M, K, xq.data(), sx.data());
  std::vector<uint8_t> xl(static_cast<size_t>(M * Kl));
  SS_RETURN_IF_ERROR(lift_activations(t, xq.data(), M, K, p, xl.data(), Kl));
  quantized_gemm(q, xl.data(), sx.data(), ws.data(), w.scales.data(), M, N, Kl, bias, y, acc_i32);
  return Status::Ok();
}

Status reference_dense_linear(const float* x, int64_t M, const float* w, int64_t N, int64_t K,
                              QuantMode q, const float* bias, float* y, int32_t* acc_i32) {
  SS_RETURN_IF_ERROR(check_linear_args("reference dense linear", x, M, N, K, y));
  if (N > 0 && K > 0 && w == nullptr) {
    return invalid_argument("reference dense linear: null weight");
  }
  if (acc_i32 && q != QuantMode::kInt8) {
    return invalid_argument("reference dense linear: int32 accumulators requested for " +
                            std::string(quant_mode_name(q)) + " (int8 only)");
  }
  if (q == QuantMode::kNone) {
    gemm_ref_f32(x, w, y, M, N, K, /*acc64=*/true);
    add_bias(y, bias, M, N);
    return Status::Ok();
  }
  std::vector<uint8_t> xq(static_cast<size_t>(M * K)), wq(static_cast<size_t>(N * K));
  std::vector<float> sx(static_cast<size_t>(M)), sw(static_cast<size_t>(N));
  quantize_rows(q, x, M, K, xq.data(), sx.data());
  quantize_rows(q, w, N, K, wq.data(), sw.data());
  quantized_gemm(q, xq.data(), sx.data(), wq.data(), sw.data(), M, N, K, bias, y, acc_i32);
  return Status::Ok();
}

}  // namespace slidesparse
