// The margins of the GPU quantizer's fast path (src/cuda/kernels/quant_common.cuh, quant8_fast),
// checked exhaustively on the CPU. The kernels do not divide: they round y = v * inv (inv = 1/scale
// correctly rounded) and accept that code when a cheap test on y says that y is far enough from
// every rounding boundary that v / scale (the rule of DESIGN.md, quantize_int8 / quantize_fp8)
// rounds the same way; otherwise an exact path divides. That argument (the comment above
// quant8_fast) is what makes the kernels bit-exact; the GPU tests sample it, this test proves it
// for every 16-bit input value against sets of row scales. The model below is the fast path's
// arithmetic written for the host (every operation IEEE-rounded in fp32, as on the device; the
// device's cvt.rn.satfinite e4m3 is float_to_e4m3, which the GPU tests pin down): any change to
// the tests in quant8_fast must be made here too. The margin is a parameter, so the test also
// shows that it is needed: with no margin (only y exactly on a boundary refused) the fast path
// gives wrong codes. On these inputs the smallest margins that pass are 1 fp32 ulp (e4m3) and
// 2^-17 (int8); the kernels keep 64 ulps and 2^-14, the analysis' bounds (2.5 ulps, 2^-16) with
// room.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cuda/kernels/exact_math.h"
#include "slidesparse/dtype.h"
#include "slidesparse/quant.h"

using namespace slidesparse;
namespace ex = slidesparse::cuda::exact;

namespace {

// e4m3 fast test: |y| (the subnormal range shifted onto [2^-6, 2^-5) by adding 2^-6) is farther
// than `margin` fp32 ulps from the boundary bit pattern 0x80000 of its 20 low mantissa bits, and
// |y| <= 512. Returns whether the fast code float_to_e4m3(y) may be used.
bool e4m3_fast_ok(float y, uint32_t margin) {
  float a = std::fabs(y);
  if (a < 0.015625f) a = ex::fadd(a, 0.015625f);
  return a <= 512.0f && (ex::float_to_bits(a) & 0xFFFFFu) - (0x80000u - margin) > 2 * margin;
}

// int8 fast path through the shifter S = 1.5 * 2^23: the code is t = y + S's low byte when y is
// farther than `margin` from k + 1/2 (k = t - S) and |k| <= 127.
bool i8_fast(float y, float margin, int8_t* code) {
  constexpr float kShift = 12582912.0f;
  const float t = ex::fadd(y, kShift);
  const float k = ex::fadd(t, -kShift);
  *code = static_cast<int8_t>(ex::float_to_bits(t) & 0xFFu);
  return std::fabs(y - k) < 0.5f - margin && std::fabs(k) <= 127.0f;
}

struct Tally {
  int64_t checked = 0, fast = 0, wrong = 0;
  void add(const Tally& o) {
    checked += o.checked;
    fast += o.fast;
    wrong += o.wrong;
  }
};

// Every value v of `vals` with |v| <= amax, quantized with the row scale of amax (the values a row
// of absmax amax can hold): fast-path code vs the reference wherever the fast path is taken.
Tally check_row(QuantMode q, float amax, const std::vector<float>& vals, uint32_t e4m3_margin,
                float i8_margin) {
  const float scale = ex::fdiv(amax, quant_qmax(q));  // quant_row_scale's rule, amax > 0
  const float inv = ex::fdiv(1.0f, scale);            // __frcp_rn
  Tally t;
  for (float v : vals) {
    if (!(std::fabs(v) <= amax)) continue;
    ++t.checked;
    const float y = ex::fmul(v, inv);
    if (q == QuantMode::kFp8) {
      if (!e4m3_fast_ok(y, e4m3_margin)) continue;
      ++t.fast;
      t.wrong += float_to_e4m3(y) != quantize_fp8(v, scale);
    } else {
      int8_t code;
      if (!i8_fast(y, i8_margin, &code)) continue;
      ++t.fast;
      t.wrong += code != quantize_int8(v, scale);
    }
  }
  return t;
}

// All finite values of a 16-bit float format, both signs.
std::vector<float> all_finite(float (*to_f32)(uint16_t)) {
  std::vector<float> v;
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const float f = to_f32(static_cast<uint16_t>(b));
    if (std::isfinite(f)) v.push_back(f);
  }
  return v;
}

// Row absmax values of a 16-bit format: every mantissa in [1, 2), and a spread of mantissas at
// every exponent (subnormal absmax included: there the scale is subnormal, 1/scale may overflow
// to inf, and the fast path must refuse).
std::vector<float> absmax_set(float (*to_f32)(uint16_t), int mant_bits) {
  std::vector<float> a;
  const uint32_t one = to_f32 == bf16_to_float ? 0x3F80u : 0x3C00u;
  const uint32_t mants = 1u << mant_bits;
  for (uint32_t m = 0; m < mants; ++m) a.push_back(to_f32(static_cast<uint16_t>(one | m)));
  const uint32_t picks[] = {0, 1, mants / 3, mants / 2 + 1, mants - 1};
  for (uint32_t e = 0; (e << mant_bits) < 0x7FFFu; ++e) {
    for (uint32_t m : picks) {
      const float f = to_f32(static_cast<uint16_t>((e << mant_bits) | m));
      if (f > 0.0f && std::isfinite(f)) a.push_back(f);
    }
  }
  return a;
}

Tally sweep(QuantMode q, float (*to_f32)(uint16_t), int mant_bits, uint32_t e4m3_margin,
            float i8_margin) {
  const std::vector<float> vals = all_finite(to_f32);
  Tally all;
  for (float amax : absmax_set(to_f32, mant_bits))
    all.add(check_row(q, amax, vals, e4m3_margin, i8_margin));
  return all;
}

constexpr uint32_t kE4M3Margin = 64;          // quant8_fast's: 64 fp32 ulps
constexpr float kI8Margin = 1.0f / 16384.0f;  // quant8_fast's: 2^-14

struct Format {
  const char* name;
  float (*to_f32)(uint16_t);
  int mant_bits;
};
const Format kFormats[] = {{"bf16", bf16_to_float, 7}, {"fp16", fp16_to_float, 10}};

void report(const char* what, const Tally& t) {
  std::printf("  %-28s %11lld values, fast path %6.2f %%, wrong fast codes %lld\n", what,
              static_cast<long long>(t.checked), 100.0 * t.fast / t.checked,
              static_cast<long long>(t.wrong));
}

}  // namespace

TEST(QuantFastPath, E4M3MarginGivesTheDivisionCodesForEveryInput) {
  for (const Format& f : kFormats) {
    const Tally t = sweep(QuantMode::kFp8, f.to_f32, f.mant_bits, kE4M3Margin, kI8Margin);
    report((std::string("fp8 ") + f.name).c_str(), t);
    EXPECT_EQ(t.wrong, 0) << f.name;
    EXPECT_GT(t.fast, t.checked * 9 / 10) << f.name << ": the fast path should be the common case";
  }
}

TEST(QuantFastPath, Int8MarginGivesTheDivisionCodesForEveryInput) {
  for (const Format& f : kFormats) {
    const Tally t = sweep(QuantMode::kInt8, f.to_f32, f.mant_bits, kE4M3Margin, kI8Margin);
    report((std::string("int8 ") + f.name).c_str(), t);
    EXPECT_EQ(t.wrong, 0) << f.name;
    EXPECT_GT(t.fast, t.checked * 9 / 10) << f.name;
  }
}

// Without the margins (accept y unless it is exactly on a boundary) the fast path is wrong for
// some inputs: the check above is sensitive, and the margins are not decoration.
TEST(QuantFastPath, WithoutTheMarginsSomeCodesAreWrong) {
  const Tally f = sweep(QuantMode::kFp8, fp16_to_float, 10, 0, 0.0f);
  const Tally i = sweep(QuantMode::kInt8, fp16_to_float, 10, 0, 0.0f);
  report("fp8 fp16, no margin", f);
  report("int8 fp16, no margin", i);
  EXPECT_GT(f.wrong, 0);
  EXPECT_GT(i.wrong, 0);
}
