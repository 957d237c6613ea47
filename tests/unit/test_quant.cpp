// Symmetric per-row quantization: scale rule, round half to even, clamping to ±127 (never -128),
// e4m3 saturation, all-zero rows, error bounds on random data, and the row/element APIs agreeing.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "slidesparse/quant.h"

using namespace slidesparse;

TEST(QuantInt8, ScaleRuleAndHalfToEven) {
  // absmax 127 -> scale exactly 1, so q = round_half_even(v).
  const float row[10] = {127, 2.5f, 3.5f, -2.5f, -0.5f, 0.5f, 126.5f, -126.5f, 1.49f, -0.0f};
  int8_t q[10];
  float s = 0;
  quantize_rows(QuantMode::kInt8, row, 1, 10, q, &s);
  EXPECT_EQ(s, 1.0f);
  const int8_t want[10] = {127, 2, 4, -2, 0, 0, 126, -126, 1, 0};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(q[i], want[i]) << i;
  // Negative absmax maps to -127; never -128.
  const float neg[3] = {-3.0f, 1.0f, 0.5f};
  quantize_rows(QuantMode::kInt8, neg, 1, 3, q, &s);
  EXPECT_EQ(s, 3.0f / 127.0f);
  EXPECT_EQ(q[0], -127);
  EXPECT_EQ(quantize_int8(-1000.0f, 1.0f), -127);
  EXPECT_EQ(quantize_int8(1000.0f, 1.0f), 127);
  EXPECT_EQ(quantize_int8(std::numeric_limits<float>::quiet_NaN(), 1.0f), 0);
}

TEST(QuantInt8, AllZeroRowHasScaleOne) {
  const float z[4] = {0, -0.0f, 0, 0};
  int8_t q[4] = {1, 1, 1, 1};
  float s = -1;
  quantize_rows(QuantMode::kInt8, z, 1, 4, q, &s);
  EXPECT_EQ(s, 1.0f);
  for (int8_t v : q) EXPECT_EQ(v, 0);
  EXPECT_EQ(quant_row_scale(QuantMode::kFp8, z, 4), 1.0f);
}

TEST(QuantInt8, RandomRowsWithinHalfAStepAndConsistentApis) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  const int64_t rows = 37, cols = 129;
  std::vector<float> x(rows * cols);
  for (auto& v : x) v = nd(rng);
  std::vector<int8_t> q(rows * cols, 99);
  std::vector<float> s(rows, -1.0f);
  quantize_rows(QuantMode::kInt8, x.data(), rows, cols, q.data(), s.data());
  for (int64_t r = 0; r < rows; ++r) {
    float amax = 0;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(x[r * cols + c]));
    ASSERT_EQ(s[r], amax / 127.0f);  // fp32 division, exactly the rule
    ASSERT_EQ(s[r], quant_row_scale(QuantMode::kInt8, &x[r * cols], cols));
    bool hit_max = false;
    for (int64_t c = 0; c < cols; ++c) {
      const float v = x[r * cols + c];
      const int8_t qi = q[r * cols + c];
      ASSERT_EQ(qi, quantize_int8(v, s[r]));
      ASSERT_GE(qi, -127);
      ASSERT_LE(std::fabs(qi * s[r] - v), 0.5f * s[r] * 1.0001f) << r << "," << c;
      hit_max |= std::abs(qi) == 127;
    }
    ASSERT_TRUE(hit_max) << "the absmax element must map to ±127";
  }
}

TEST(QuantFp8, ScaleRuleSaturationAndErrorBound) {
  std::mt19937 rng(12);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  const int64_t rows = 19, cols = 111;
  std::vector<float> x(rows * cols);
  for (auto& v : x) v = nd(rng);
  std::vector<uint8_t> q(rows * cols, 0x7f);
  std::vector<float> s(rows);
  quantize_rows(QuantMode::kFp8, x.data(), rows, cols, q.data(), s.data());
  for (int64_t r = 0; r < rows; ++r) {
    float amax = 0;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(x[r * cols + c]));
    ASSERT_EQ(s[r], amax / 448.0f);
    for (int64_t c = 0; c < cols; ++c) {
      const float v = x[r * cols + c];
      const uint8_t code = q[r * cols + c];
      ASSERT_EQ(code, float_to_e4m3(v / s[r]));
      ASSERT_NE(code & 0x7f, 0x7f) << "no NaN codes";
      // e4m3 RNE: relative error <= 2^-4 for normals, absolute <= 2^-10 for subnormals (in the
      // scaled domain), plus a little for the fp32 division.
      const float back = e4m3_to_float(code) * s[r];
      const float tol = (std::fabs(v) * 0.0625f + std::ldexp(1.0f, -10) * s[r]) * 1.001f;
      ASSERT_LE(std::fabs(back - v), tol) << r << "," << c;
      if (std::fabs(v) == amax) ASSERT_EQ(code & 0x7f, 0x7e);  // ±448
    }
  }
  EXPECT_EQ(quantize_fp8(1e9f, 1.0f), 0x7e);
  EXPECT_EQ(quantize_fp8(-1e9f, 1.0f), 0xfe);
}

TEST(Quant, NamesAndParse) {
  EXPECT_EQ(quant_mode_parse("none").value(), QuantMode::kNone);
  EXPECT_EQ(quant_mode_parse("int8").value(), QuantMode::kInt8);
  EXPECT_EQ(quant_mode_parse("fp8").value(), QuantMode::kFp8);
  auto bad = quant_mode_parse("int4");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("\"int4\""), std::string::npos);
  EXPECT_STREQ(quant_mode_name(QuantMode::kFp8), "fp8");
  EXPECT_EQ(quant_storage_dtype(QuantMode::kInt8), DType::kI8);
  EXPECT_EQ(quant_storage_dtype(QuantMode::kFp8), DType::kF8E4M3);
  EXPECT_EQ(quant_qmax(QuantMode::kInt8), 127.0f);
  EXPECT_EQ(quant_qmax(QuantMode::kFp8), 448.0f);
}
