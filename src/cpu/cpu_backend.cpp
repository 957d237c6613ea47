// CPU backend: fp32 ops and the SlideSparse linear computed in its equivalent dense form (the slide
// is lossless, proven bit-exact by the core tests) with OpenBLAS sgemm.
//
// int8 exactness: codes are integers in [-127, 127], so every partial sum of a K-chunk of at most
// 1024 products is an integer of magnitude <= 1024 * 127 * 127 = 16,516,096 < 2^24: exact in fp32
// whatever order sgemm sums in. Chunk results are converted to int32 and added in int32, so the
// accumulators equal gemm_ref_i8's, and the epilogue is the reference's (acc * s_x * s_w + bias).
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/gemm_blas.h"
#include "slidesparse/backend.h"
#include "slidesparse/dtype.h"
#include "slidesparse/quant.h"

namespace slidesparse {
namespace {

constexpr int64_t kI8Chunk = 1024;

void add_bias(float* y, const std::vector<float>& bias, int64_t M, int64_t N) {
  if (bias.empty()) return;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) y[i * N + j] += bias[static_cast<size_t>(j)];
}

class DenseLinear final : public Linear {
 public:
  DenseLinear(std::vector<float> w, int64_t N, int64_t K, std::vector<float> bias)
      : w_(std::move(w)), bias_(std::move(bias)), N_(N), K_(K) {}
  int64_t N() const override { return N_; }
  int64_t K() const override { return K_; }
  std::string describe() const override { return "dense f32"; }
  void forward(const float* x, int64_t M, float* y) const override {
    cpu::gemm_f32(x, w_.data(), y, M, N_, K_);
    add_bias(y, bias_, M, N_);
  }

 private:
  std::vector<float> w_;  // [N, K]
  std::vector<float> bias_;
  int64_t N_, K_;
};

class NmLinear final : public Linear {
 public:
  NmLinear(const NmTensor& t, std::vector<float> bias)
      : bias_(std::move(bias)), N_(t.N), K_(t.K), quant_(t.quant()), pattern_(t.pattern) {
    // Dense [N, K] of the stored values: codes for int8/fp8, bf16/f16 values for none.
    std::vector<uint8_t> dense(static_cast<size_t>(N_ * K_) * dtype_size(t.value_dtype));
    nm_unpack(t, dense.data());
    w_.resize(static_cast<size_t>(N_ * K_));
    Status s = convert_to_f32(t.value_dtype, dense.data(), w_.data(), N_ * K_);
    SS_ASSERT(s.ok());
    scales_ = t.scales;
  }
  int64_t N() const override { return N_; }
  int64_t K() const override { return K_; }
  std::string describe() const override {
    return std::to_string(pattern_.n) + ":" + std::to_string(pattern_.m) + " " +
           quant_mode_name(quant_);
  }
  void forward(const float* x, int64_t M, float* y) const override {
    if (quant_ == QuantMode::kNone) {
      cpu::gemm_f32(x, w_.data(), y, M, N_, K_);
      add_bias(y, bias_, M, N_);
      return;
    }
    const size_t MK = static_cast<size_t>(M * K_);
    std::vector<uint8_t> codes(MK);
    std::vector<float> sx(static_cast<size_t>(M)), xf(MK);
    quantize_rows(quant_, x, M, K_, codes.data(), sx.data());
    Status s = convert_to_f32(quant_storage_dtype(quant_), codes.data(), xf.data(),
                              static_cast<int64_t>(MK));
    SS_ASSERT(s.ok());
    if (quant_ == QuantMode::kInt8) {
      std::vector<int32_t> acc(static_cast<size_t>(M * N_), 0);
      std::vector<float> part(static_cast<size_t>(M * N_));
      for (int64_t k0 = 0; k0 < K_; k0 += kI8Chunk) {
        const int64_t kc = std::min(kI8Chunk, K_ - k0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M),
                    static_cast<int>(N_), static_cast<int>(kc), 1.0f, xf.data() + k0,
                    static_cast<int>(K_), w_.data() + k0, static_cast<int>(K_), 0.0f, part.data(),
                    static_cast<int>(N_));
        for (size_t i = 0; i < part.size(); ++i) acc[i] += static_cast<int32_t>(part[i]);
      }
      epilogue(acc.data(), sx.data(), M, y);
    } else {
      std::vector<float> acc(static_cast<size_t>(M * N_));
      cpu::gemm_f32(xf.data(), w_.data(), acc.data(), M, N_, K_);
      epilogue(acc.data(), sx.data(), M, y);
    }
  }

 private:
  template <class Acc>
  void epilogue(const Acc* acc, const float* sx, int64_t M, float* y) const {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N_; ++j) {
        float v = static_cast<float>(acc[i * N_ + j]) * sx[i] * scales_[static_cast<size_t>(j)];
        if (!bias_.empty()) v += bias_[static_cast<size_t>(j)];
        y[i * N_ + j] = v;
      }
  }

  std::vector<float> w_;  // [N, K] fp32 of the codes or values
  std::vector<float> scales_, bias_;
  int64_t N_, K_;
  QuantMode quant_;
  Pattern pattern_;
};

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  std::unique_ptr<Linear> make_dense_linear(std::vector<float> w, int64_t N, int64_t K,
                                            std::vector<float> bias) override {
    return std::make_unique<DenseLinear>(std::move(w), N, K, std::move(bias));
  }
  Expected<std::unique_ptr<Linear>> make_nm_linear(const NmTensor& w,
                                                   std::vector<float> bias) override {
    SS_RETURN_IF_ERROR(nm_verify(w));
    if (!bias.empty() && static_cast<int64_t>(bias.size()) != w.N) {
      return invalid_argument("nm linear: bias has " + std::to_string(bias.size()) +
                              " elements, expected " + std::to_string(w.N));
    }
    if (w.quant() != QuantMode::kNone && static_cast<int64_t>(w.scales.size()) != w.N) {
      return invalid_argument("nm linear: expected " + std::to_string(w.N) + " weight scales");
    }
    return std::unique_ptr<Linear>(std::make_unique<NmLinear>(w, std::move(bias)));
  }
  void rmsnorm(const float* x, const float* w, float* y, int64_t M, int64_t C,
               float eps) const override {
    for (int64_t i = 0; i < M; ++i) {
      const float* xr = x + i * C;
      double ss = 0;
      for (int64_t c = 0; c < C; ++c) ss += static_cast<double>(xr[c]) * xr[c];
      const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(C) + eps));
      for (int64_t c = 0; c < C; ++c) y[i * C + c] = xr[c] * inv * w[c];
    }
  }
  void rope(float* x, int64_t M, int64_t heads, int64_t hd, const int64_t* pos,
            const float* inv_freq) const override {
    const int64_t half = hd / 2;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t f = 0; f < half; ++f) {
        const float ang = static_cast<float>(pos[i]) * inv_freq[f];
        const float c = std::cos(ang), s = std::sin(ang);
        for (int64_t h = 0; h < heads; ++h) {
          float* r = x + (i * heads + h) * hd;
          const float a = r[f], b = r[f + half];
          r[f] = a * c - b * s;
          r[f + half] = b * c + a * s;
        }
      }
  }
  void attention(const float* q, const float* k, const float* v, float* out, int64_t n,
                 int64_t pos0, int64_t H, int64_t KV, int64_t hd) const override {
    const int64_t S = pos0 + n, group = H / KV;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    std::vector<float> sc(static_cast<size_t>(n * S));
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kvh = h / group;
      // scores [n, S] = q_h [n, hd] * k_kvh [S, hd]^T
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(S),
                  static_cast<int>(hd), scale, q + h * hd, static_cast<int>(H * hd), k + kvh * hd,
                  static_cast<int>(KV * hd), 0.0f, sc.data(), static_cast<int>(S));
      for (int64_t i = 0; i < n; ++i) {
        float* row = sc.data() + i * S;
        const int64_t last = pos0 + i;  // causal: keys 0..last
        float mx = row[0];
        for (int64_t j = 1; j <= last; ++j) mx = std::max(mx, row[j]);
        double sum = 0;
        for (int64_t j = 0; j <= last; ++j) {
          row[j] = std::exp(row[j] - mx);
          sum += row[j];
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t j = 0; j <= last; ++j) row[j] *= inv;
        for (int64_t j = last + 1; j < S; ++j) row[j] = 0.0f;
      }
      // out_h [n, hd] = p [n, S] * v_kvh [S, hd]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n),
                  static_cast<int>(hd), static_cast<int>(S), 1.0f, sc.data(), static_cast<int>(S),
                  v + kvh * hd, static_cast<int>(KV * hd), 0.0f, out + h * hd,
                  static_cast<int>(H * hd));
    }
  }
  void silu_mul(const float* g, const float* u, float* out, int64_t count) const override {
    for (int64_t i = 0; i < count; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() {
  return std::make_unique<CpuBackend>();
}

}  // namespace slidesparse
