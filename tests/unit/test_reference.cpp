// Reference SlideSparse linear (quantize -> lift -> GEMM over the slided weight -> dequant + bias)
// against the dense linear on the pruned weights. Must show: int8 bit-exact int32 accumulators and
// outputs for several patterns and awkward shapes (M = 1, 7, 19; K not a multiple of m; N = 111);
// fp8 and bf16/fp16 with stated tolerances. Plus the reference GEMMs themselves.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "slidesparse/reference.h"

using namespace slidesparse;

namespace {

struct Case {
  const char* pattern;
  int64_t M, N, K;
};

// Patterns × awkward shapes; K values are never multiples of m.
const Case kCases[] = {
    {"2:4", 1, 111, 45},  {"4:6", 7, 111, 131},   {"6:8", 19, 111, 203}, {"5:8", 7, 111, 77},
    {"8:10", 1, 111, 99}, {"14:16", 19, 111, 53}, {"6:8", 1, 1, 3},      {"2:4", 19, 111, 2},
};

std::vector<float> randn(std::mt19937& rng, int64_t n, float sd) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

}  // namespace

TEST(ReferenceGemm, SmallKnownValues) {
  const float x[6] = {1, 2, 3, 4, 5, 6};         // [2, 3]
  const float w[6] = {1, 0, -1, 0.5f, 0.5f, 0};  // [2, 3]
  float y[4] = {-1, -1, -1, -1};
  gemm_ref_f32(x, w, y, 2, 2, 3);
  EXPECT_EQ(y[0], -2.0f);
  EXPECT_EQ(y[1], 1.5f);
  EXPECT_EQ(y[2], -2.0f);
  EXPECT_EQ(y[3], 4.5f);
  const int8_t xi[4] = {127, -127, 127, 127};
  const int8_t wi[4] = {127, -127, 127, 127};
  int32_t yi = 0;
  gemm_ref_i8(xi, wi, &yi, 1, 1, 4);
  EXPECT_EQ(yi, 4 * 127 * 127);
  const uint8_t xe[2] = {0x7e, 0x01};  // 448, 2^-9
  const uint8_t we[2] = {0xfe, 0x01};  // -448, 2^-9
  float ye = 0;
  gemm_ref_e4m3(xe, we, &ye, 1, 1, 2);
  EXPECT_EQ(ye, static_cast<float>(-448.0 * 448.0 + std::ldexp(1.0, -18)));
}

// int8: the sparse path (compact weight -> slide, per-token quant -> lift, int32 GEMM) equals the
// dense path (pruned fp32 weight quantized per channel, int32 GEMM) bit for bit.
TEST(ReferenceLinear, Int8SparseEqualsDenseBitExact) {
  std::mt19937 rng(31);
  for (const Case& c : kCases) {
    for (PruneMethod method : {PruneMethod::kMagnitude, PruneMethod::kWanda}) {
      const Pattern p = *Pattern::parse(c.pattern);
      const auto x = randn(rng, c.M * c.K, 1.0f), w = randn(rng, c.N * c.K, 0.05f),
                 bias = randn(rng, c.N, 0.1f);
      std::vector<float> norms = randn(rng, c.K, 1.0f);
      for (auto& v : norms) v = std::fabs(v);
      const float* nrm = method == PruneMethod::kWanda ? norms.data() : nullptr;
      auto t = nm_compress(w.data(), c.N, c.K, p, method, nrm, QuantMode::kInt8, DType::kBF16);
      ASSERT_TRUE(t.ok()) << t.status().message();
      auto masks = *prune_select(w.data(), c.N, c.K, p, method, nrm);
      std::vector<float> wp = w;
      prune_apply(wp.data(), c.N, c.K, p, masks.data());
      std::vector<float> ys(c.M * c.N, NAN), yd(c.M * c.N, -7.0f);
      std::vector<int32_t> as(c.M * c.N, 0x5a5a5a5a), ad(c.M * c.N, -1);
      ASSERT_TRUE(
          reference_sparse_linear(x.data(), c.M, *t, bias.data(), ys.data(), as.data()).ok());
      ASSERT_TRUE(reference_dense_linear(x.data(), c.M, wp.data(), c.N, c.K, QuantMode::kInt8,
                                         bias.data(), yd.data(), ad.data())
                      .ok());
      ASSERT_EQ(as, ad) << c.pattern << " M=" << c.M << " K=" << c.K;
      ASSERT_EQ(ys, yd) << c.pattern << " M=" << c.M << " K=" << c.K;
      bool any_nonzero = false;
      for (int32_t a : as) any_nonzero |= a != 0;
      ASSERT_TRUE(any_nonzero);
    }
  }
}

// fp8: tolerance 0 between sparse and dense. Why exact: both quantize x and W identically; every
// product of two e4m3 values is exact; the slide keeps the nonzero weights in ascending position
// order, so the lifted sum adds the same products in the same order, only with extra exact zeros.
// Against the unquantized fp32 linear the stated bound is per product: each operand is within
// 2^-4 relative (RNE, 3 mantissa bits) plus 2^-10·scale absolute (subnormals) of its true value.
TEST(ReferenceLinear, Fp8SparseEqualsDenseAndIsCloseToFp32) {
  std::mt19937 rng(32);
  for (const Case& c : kCases) {
    const Pattern p = *Pattern::parse(c.pattern);
    const auto x = randn(rng, c.M * c.K, 1.0f), w = randn(rng, c.N * c.K, 0.05f),
               bias = randn(rng, c.N, 0.1f);
    auto t = nm_compress(w.data(), c.N, c.K, p, PruneMethod::kMagnitude, nullptr, QuantMode::kFp8,
                         DType::kBF16);
    ASSERT_TRUE(t.ok());
    auto masks = *prune_select(w.data(), c.N, c.K, p, PruneMethod::kMagnitude, nullptr);
    std::vector<float> wp = w;
    prune_apply(wp.data(), c.N, c.K, p, masks.data());
    std::vector<float> ys(c.M * c.N, NAN), yd(c.M * c.N, -7.0f), yf(c.M * c.N, -9.0f);
    ASSERT_TRUE(reference_sparse_linear(x.data(), c.M, *t, bias.data(), ys.data()).ok());
    ASSERT_TRUE(reference_dense_linear(x.data(), c.M, wp.data(), c.N, c.K, QuantMode::kFp8,
                                       bias.data(), yd.data())
                    .ok());
    ASSERT_TRUE(reference_dense_linear(x.data(), c.M, wp.data(), c.N, c.K, QuantMode::kNone,
                                       bias.data(), yf.data())
                    .ok());
    ASSERT_EQ(ys, yd) << c.pattern;
    std::vector<float> sx(c.M);
    for (int64_t i = 0; i < c.M; ++i) sx[i] = quant_row_scale(QuantMode::kFp8, &x[i * c.K], c.K);
    for (int64_t i = 0; i < c.M; ++i) {
      for (int64_t j = 0; j < c.N; ++j) {
        double bound = 1e-6;
        for (int64_t k = 0; k < c.K; ++k) {
          const double ex = std::fabs(x[i * c.K + k]) / 16 + sx[i] * std::ldexp(1.0, -10);
          const double ew = std::fabs(wp[j * c.K + k]) / 16 + t->scales[j] * std::ldexp(1.0, -10);
          bound += std::fabs(x[i * c.K + k]) * ew + std::fabs(wp[j * c.K + k]) * ex + ex * ew;
        }
        ASSERT_LE(std::fabs(ys[i * c.N + j] - yf[i * c.N + j]), bound * 1.01 + 1e-6)
            << c.pattern << " (" << i << "," << j << ")";
      }
    }
  }
}

// bf16/fp16 (quant none): tolerance 0 between sparse and dense for the same reason as fp8 (fp64
// accumulation in the same order, zeros exact); against an independent fp64 dot product of x and
// the stored bf16/fp16 values the only error is the final rounding to fp32: 2^-24 relative to
// sum |x·w| (plus bias rounding).
TEST(ReferenceLinear, Bf16Fp16SparseEqualsDenseAndMatchesFp64) {
  std::mt19937 rng(33);
  for (const Case& c : kCases) {
    for (DType fd : {DType::kBF16, DType::kF16}) {
      const Pattern p = *Pattern::parse(c.pattern);
      const auto x = randn(rng, c.M * c.K, 1.0f), w = randn(rng, c.N * c.K, 0.05f),
                 bias = randn(rng, c.N, 0.1f);
      auto t = nm_compress(w.data(), c.N, c.K, p, PruneMethod::kMagnitude, nullptr,
                           QuantMode::kNone, fd);
      ASSERT_TRUE(t.ok());
      const std::vector<float> wd = nm_to_dense_f32(*t);  // the stored values, in fp32
      std::vector<float> ys(c.M * c.N, NAN), yd(c.M * c.N, -7.0f);
      ASSERT_TRUE(reference_sparse_linear(x.data(), c.M, *t, bias.data(), ys.data()).ok());
      ASSERT_TRUE(reference_dense_linear(x.data(), c.M, wd.data(), c.N, c.K, QuantMode::kNone,
                                         bias.data(), yd.data())
                      .ok());
      ASSERT_EQ(ys, yd) << c.pattern << " " << dtype_name(fd);
      for (int64_t i = 0; i < c.M; ++i) {
        for (int64_t j = 0; j < c.N; ++j) {
          double exact = 0, mag = 0;
          for (int64_t k = 0; k < c.K; ++k) {
            exact += static_cast<double>(x[i * c.K + k]) * wd[j * c.K + k];
            mag += std::fabs(static_cast<double>(x[i * c.K + k]) * wd[j * c.K + k]);
          }
          const double tol = (mag + std::fabs(exact) + std::fabs(bias[j])) * std::ldexp(1.0, -23);
          ASSERT_LE(std::fabs(ys[i * c.N + j] - (exact + bias[j])), tol + 1e-30) << c.pattern;
        }
      }
    }
  }
}

TEST(ReferenceLinear, NullBiasAndBadInput) {
  std::mt19937 rng(34);
  const Pattern p = *Pattern::parse("6:8");
  const int64_t M = 3, N = 5, K = 16;
  const auto x = randn(rng, M * K, 1.0f), w = randn(rng, N * K, 1.0f);
  auto t8 = *nm_compress(w.data(), N, K, p, PruneMethod::kMagnitude, nullptr, QuantMode::kInt8,
                         DType::kBF16);
  std::vector<float> y(M * N, NAN);
  std::vector<int32_t> acc(M * N);
  ASSERT_TRUE(reference_sparse_linear(x.data(), M, t8, nullptr, y.data(), acc.data()).ok());
  std::vector<float> sx(M);
  for (int64_t i = 0; i < M; ++i) sx[i] = quant_row_scale(QuantMode::kInt8, &x[i * K], K);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      ASSERT_EQ(y[i * N + j], static_cast<float>(acc[i * N + j]) * sx[i] * t8.scales[j]);
    }
  }
  // int32 accumulators only for int8.
  auto tb = *nm_compress(w.data(), N, K, p, PruneMethod::kMagnitude, nullptr, QuantMode::kNone,
                         DType::kBF16);
  EXPECT_FALSE(reference_sparse_linear(x.data(), M, tb, nullptr, y.data(), acc.data()).ok());
  EXPECT_FALSE(reference_dense_linear(x.data(), M, w.data(), N, K, QuantMode::kFp8, nullptr,
                                      y.data(), acc.data())
                   .ok());
  // A corrupted compact weight is rejected before anything is written.
  NmTensor bad = t8;
  bad.masks[1] = 0x01;
  std::vector<float> poison(M * N, 12345.0f);
  Status s = reference_sparse_linear(x.data(), M, bad, nullptr, poison.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("row 0, block 1"), std::string::npos) << s.message();
  for (float v : poison) ASSERT_EQ(v, 12345.0f);
  EXPECT_FALSE(reference_sparse_linear(x.data(), -1, t8, nullptr, y.data()).ok());
  // M = 0 is a valid empty batch.
  EXPECT_TRUE(reference_sparse_linear(x.data(), 0, t8, nullptr, y.data()).ok());
}
