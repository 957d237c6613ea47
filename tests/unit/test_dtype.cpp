// bf16 / fp16 / fp8-e4m3 conversions against the formats' definitions, computed independently here:
// every code decodes to its spec value and round-trips; every midpoint between neighbouring codes
// rounds to the even code, one ulp (fp32) either side rounds to the nearer code; saturation, NaN,
// inf and subnormals. Plus the bulk converters and dtype names.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "slidesparse/dtype.h"

using namespace slidesparse;

namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Spec decoders, written from the format definitions (not from the library).
double spec_e4m3(int c) {  // NaN for 0x7f/0xff
  const int s = c >> 7, e = (c >> 3) & 15, m = c & 7;
  if (e == 15 && m == 7) return std::numeric_limits<double>::quiet_NaN();
  const double v = e == 0 ? std::ldexp(m, -9) : std::ldexp(8 + m, e - 10);
  return s ? -v : v;
}
double spec_fp16(int c) {
  const int s = c >> 15, e = (c >> 10) & 31, m = c & 1023;
  double v;
  if (e == 31) {
    v = m == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else {
    v = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
  }
  return s ? -v : v;
}
double spec_bf16(int c) {
  const int s = c >> 15, e = (c >> 7) & 255, m = c & 127;
  double v;
  if (e == 255) {
    v = m == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else {
    v = e == 0 ? std::ldexp(m, -133) : std::ldexp(128 + m, e - 134);
  }
  return s ? -v : v;
}

// For consecutive positive codes lo, lo+1 with finite values a < b: the midpoint goes to the even
// code, the floats just below/above it to lo / lo+1. `mirror` is the sign bit of the format.
template <class Enc>
void check_midpoints(const char* fmt, int lo, double a, double b, int sign_bit, Enc enc) {
  const float mid = static_cast<float>((a + b) / 2);
  ASSERT_EQ(static_cast<double>(mid), (a + b) / 2) << fmt << " midpoint not exact in fp32";
  const int even = (lo % 2 == 0) ? lo : lo + 1;
  EXPECT_EQ(enc(mid), even) << fmt << " midpoint above code " << lo;
  EXPECT_EQ(enc(-mid), even | sign_bit) << fmt << " -midpoint above code " << lo;
  EXPECT_EQ(enc(std::nextafter(mid, 0.0f)), lo) << fmt << " just below midpoint above " << lo;
  EXPECT_EQ(enc(std::nextafter(mid, std::numeric_limits<float>::infinity())), lo + 1)
      << fmt << " just above midpoint " << lo;
  EXPECT_EQ(enc(-std::nextafter(mid, std::numeric_limits<float>::infinity())), (lo + 1) | sign_bit)
      << fmt;
}

}  // namespace

// ---- fp8 e4m3 ---------------------------------------------------------------------------------
TEST(DTypeE4M3, All256CodesDecodeToSpecAndRoundTrip) {
  int nans = 0;
  for (int c = 0; c < 256; ++c) {
    const double want = spec_e4m3(c);
    const float got = e4m3_to_float(static_cast<uint8_t>(c));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << "code " << c;
      ++nans;
      continue;
    }
    EXPECT_EQ(static_cast<double>(got), want) << "code " << c;
    EXPECT_EQ(std::signbit(got), c >= 128) << "code " << c;
    EXPECT_EQ(float_to_e4m3(got), c) << "round trip of code " << c;
  }
  EXPECT_EQ(nans, 2);
  EXPECT_EQ(e4m3_to_float(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_float(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(e4m3_to_float(0x08), std::ldexp(1.0f, -6));
}

TEST(DTypeE4M3, MidpointsRoundToEvenAndNeighboursToNearest) {
  for (int c = 0; c < 0x7e; ++c) {
    check_midpoints("e4m3", c, spec_e4m3(c), spec_e4m3(c + 1), 0x80,
                    [](float f) { return static_cast<int>(float_to_e4m3(f)); });
  }
}

TEST(DTypeE4M3, SaturationNaNZeroAndSubnormals) {
  EXPECT_EQ(float_to_e4m3(448.0f), 0x7e);
  EXPECT_EQ(float_to_e4m3(464.0f), 0x7e);  // midpoint to the (non-existent) 480
  EXPECT_EQ(float_to_e4m3(479.9f), 0x7e);
  EXPECT_EQ(float_to_e4m3(1e30f), 0x7e);
  EXPECT_EQ(float_to_e4m3(std::numeric_limits<float>::max()), 0x7e);
  EXPECT_EQ(float_to_e4m3(-1e30f), 0xfe);
  EXPECT_EQ(float_to_e4m3(std::numeric_limits<float>::infinity()), 0x7e);
  EXPECT_EQ(float_to_e4m3(-std::numeric_limits<float>::infinity()), 0xfe);
  EXPECT_EQ(float_to_e4m3(std::numeric_limits<float>::quiet_NaN()), 0x7f);
  EXPECT_EQ(float_to_e4m3(-std::numeric_limits<float>::quiet_NaN()), 0xff);
  EXPECT_EQ(float_to_e4m3(0.0f), 0x00);
  EXPECT_EQ(float_to_e4m3(-0.0f), 0x80);
  EXPECT_EQ(float_to_e4m3(std::ldexp(1.0f, -10)), 0x00);  // half the smallest subnormal: even
  EXPECT_EQ(float_to_e4m3(std::nextafter(std::ldexp(1.0f, -10), 1.0f)), 0x01);
  EXPECT_EQ(float_to_e4m3(-std::ldexp(1.0f, -10)), 0x80);
  EXPECT_EQ(float_to_e4m3(3 * std::ldexp(1.0f, -10)), 0x02);  // 1.5 ulp: to even 2
  EXPECT_EQ(float_to_e4m3(std::ldexp(15.5f, -9)), 0x10);      // largest subnormal rounds up
  EXPECT_EQ(float_to_e4m3(1e-30f), 0x00);
  EXPECT_EQ(float_to_e4m3(std::numeric_limits<float>::denorm_min()), 0x00);
  EXPECT_EQ(float_to_e4m3(-1e-30f), 0x80);
}

TEST(DTypeE4M3, RandomFloatsMatchBruteForceNearest) {
  // Nearest of the 127 finite non-negative values; ties to the even code; saturate above 448.
  std::vector<double> vals(127);
  for (int c = 0; c < 127; ++c) vals[c] = spec_e4m3(c);
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> ex(-14, 10);
  for (int it = 0; it < 20000; ++it) {
    const float f = std::ldexp(mant(rng), ex(rng));
    int best = 0;
    for (int c = 1; c < 127; ++c) {
      const double dc = std::fabs(vals[c] - f), db = std::fabs(vals[best] - f);
      if (dc < db || (dc == db && c % 2 == 0)) best = c;
    }
    if (f > 448.0f) best = 0x7e;
    ASSERT_EQ(float_to_e4m3(f), best) << "f=" << f;
    ASSERT_EQ(float_to_e4m3(-f), best | 0x80) << "f=" << -f;
  }
}

// ---- bf16 --------------------------------------------------------------------------------------
TEST(DTypeBF16, All65536CodesDecodeAndRoundTrip) {
  for (int c = 0; c < 65536; ++c) {
    const float got = bf16_to_float(static_cast<uint16_t>(c));
    const double want = spec_bf16(c);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << c;
      const uint16_t back = float_to_bf16(got);
      ASSERT_TRUE(std::isnan(bf16_to_float(back))) << c;
      ASSERT_EQ(back & 0x8000, c & 0x8000) << "NaN sign " << c;
      ASSERT_TRUE(back & 0x0040) << "NaN must come back quiet " << c;
      continue;
    }
    ASSERT_EQ(static_cast<double>(got), want) << c;
    ASSERT_EQ(std::signbit(got), c >= 0x8000) << c;
    ASSERT_EQ(float_to_bf16(got), c) << c;
  }
}

TEST(DTypeBF16, MidpointsAllCodes) {
  // Every positive finite code and its successor (the last pair is max -> inf: the midpoint
  // rounds to the even code, which is inf — what RNE does).
  for (int c = 0; c < 0x7f80; ++c) {
    const double a = spec_bf16(c);
    const double b = c + 1 == 0x7f80 ? std::ldexp(1.0, 128) : spec_bf16(c + 1);
    if (c + 1 == 0x7f80) {
      // (a+b)/2 is not a float here; build it from bits: mantissa ..., round bit set.
      const float mid = from_bits((static_cast<uint32_t>(c) << 16) | 0x8000u);
      EXPECT_EQ(float_to_bf16(mid), 0x7f80);
      EXPECT_EQ(float_to_bf16(std::nextafter(mid, 0.0f)), c);
      continue;
    }
    check_midpoints("bf16", c, a, b, 0x8000,
                    [](float f) { return static_cast<int>(float_to_bf16(f)); });
    if (HasFailure()) return;
  }
}

TEST(DTypeBF16, SpecialValues) {
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(float_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds up to inf
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  // A signalling NaN payload confined to the low bits must not turn into inf.
  const uint16_t n = float_to_bf16(from_bits(0x7f800001u));
  EXPECT_TRUE(std::isnan(bf16_to_float(n)));
  EXPECT_EQ(float_to_bf16(from_bits(0xffc00000u)) & 0x8000, 0x8000);
}

// ---- fp16 --------------------------------------------------------------------------------------
TEST(DTypeFP16, All65536CodesDecodeAndRoundTrip) {
  for (int c = 0; c < 65536; ++c) {
    const float got = fp16_to_float(static_cast<uint16_t>(c));
    const double want = spec_fp16(c);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << c;
      const uint16_t back = float_to_fp16(got);
      ASSERT_TRUE(std::isnan(fp16_to_float(back))) << c;
      ASSERT_EQ(back & 0x8000, c & 0x8000) << c;
      ASSERT_TRUE(back & 0x0200) << "NaN must come back quiet " << c;
      continue;
    }
    ASSERT_EQ(static_cast<double>(got), want) << c;
    ASSERT_EQ(std::signbit(got), c >= 0x8000) << c;
    ASSERT_EQ(float_to_fp16(got), c) << c;
  }
}

TEST(DTypeFP16, MidpointsAllCodesIncludingSubnormalsAndOverflow) {
  for (int c = 0; c < 0x7c00; ++c) {
    const double a = spec_fp16(c);
    const double b = c + 1 == 0x7c00 ? 65536.0 : spec_fp16(c + 1);  // max -> inf as 2^16
    check_midpoints("fp16", c, a, b, 0x8000,
                    [](float f) { return static_cast<int>(float_to_fp16(f)); });
    if (HasFailure()) return;
  }
}

TEST(DTypeFP16, SpecialValues) {
  EXPECT_EQ(float_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_fp16(65519.99f), 0x7bff);
  EXPECT_EQ(float_to_fp16(65520.0f), 0x7c00);
  EXPECT_EQ(float_to_fp16(1e10f), 0x7c00);
  EXPECT_EQ(float_to_fp16(-1e10f), 0xfc00);
  EXPECT_EQ(float_to_fp16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even
  EXPECT_EQ(float_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(float_to_fp16(-std::ldexp(1.0f, -26)), 0x8000);
  EXPECT_EQ(float_to_fp16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(float_to_fp16(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(fp16_to_float(float_to_fp16(std::numeric_limits<float>::quiet_NaN()))));
}

// ---- bulk and names
// ------------------------------------------------------------------------------
TEST(DTypeBulk, RoundTripEverySupportedDType) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> d(-100, 100);
  std::vector<float> src(257);
  for (auto& v : src) v = static_cast<float>(d(rng)) / 4.0f;  // exact in bf16/fp16; I8 rounds
  for (DType t :
       {DType::kF32, DType::kF16, DType::kBF16, DType::kF8E4M3, DType::kI8, DType::kI32}) {
    std::vector<uint8_t> buf(src.size() * dtype_size(t), 0xa5);
    ASSERT_TRUE(convert_from_f32(t, src.data(), buf.data(), 257).ok()) << dtype_name(t);
    std::vector<float> back(src.size(), -12345.0f);
    ASSERT_TRUE(convert_to_f32(t, buf.data(), back.data(), 257).ok()) << dtype_name(t);
    for (size_t i = 0; i < src.size(); ++i) {
      float want = src[i];
      if (t == DType::kF8E4M3) want = e4m3_to_float(float_to_e4m3(src[i]));
      if (t == DType::kI8 || t == DType::kI32) want = std::nearbyint(src[i]);  // half to even
      ASSERT_EQ(back[i], want) << dtype_name(t) << " i=" << i << " v=" << src[i];
    }
  }
  const float big[3] = {300.0f, -300.0f, 2.5f};
  int8_t q[3];
  ASSERT_TRUE(convert_from_f32(DType::kI8, big, q, 3).ok());
  EXPECT_EQ(q[0], 127);
  EXPECT_EQ(q[1], -128);
  EXPECT_EQ(q[2], 2);
}

TEST(DTypeBulk, UnsupportedDTypeIsAnError) {
  float f[2] = {1, 2};
  uint8_t b[16];
  for (DType t : {DType::kU8, DType::kU16, DType::kI64, DType::kF64, DType::kBool}) {
    Status s = convert_from_f32(t, f, b, 2);
    EXPECT_EQ(s.code(), StatusCode::kUnsupported) << dtype_name(t);
    EXPECT_NE(s.message().find(dtype_name(t)), std::string::npos) << s.message();
    EXPECT_EQ(convert_to_f32(t, b, f, 2).code(), StatusCode::kUnsupported);
  }
}

TEST(DTypeNames, RoundTripAndSizes) {
  const std::pair<DType, size_t> all[] = {
      {DType::kF32, 4}, {DType::kF16, 2}, {DType::kBF16, 2}, {DType::kF8E4M3, 1}, {DType::kI8, 1},
      {DType::kU8, 1},  {DType::kI16, 2}, {DType::kU16, 2},  {DType::kI32, 4},    {DType::kU32, 4},
      {DType::kI64, 8}, {DType::kF64, 8}, {DType::kBool, 1}};
  for (auto [t, size] : all) {
    EXPECT_EQ(dtype_size(t), size);
    auto back = dtype_from_name(dtype_name(t));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, t);
  }
  EXPECT_TRUE(dtype_is_float(DType::kF8E4M3));
  EXPECT_FALSE(dtype_is_float(DType::kI8));
  auto bad = dtype_from_name("F4");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("\"F4\""), std::string::npos);
  EXPECT_EQ(bad.status().message().find('\n'), std::string::npos);
  EXPECT_FALSE(dtype_from_name("bf16").ok());  // safetensors spelling is case-sensitive
}
