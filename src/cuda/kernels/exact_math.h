// Scalar math shared by the engine kernels and their CPU references (the tests include it): every
// step is one IEEE-rounded basic operation (+, *, /, sqrt, fma) in a fixed order, so the host and
// the GPU produce the same bits. No fast-math and no contraction: products and sums go through the
// helpers below (device: __fmul_rn & co.; host: a volatile store forces the rounding).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SS_HD __host__ __device__ __forceinline__
#else
#define SS_HD inline
#endif

namespace slidesparse::cuda::exact {

SS_HD float fmul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  volatile float r = a * b;
  return r;
#endif
}
SS_HD float fadd(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  volatile float r = a + b;
  return r;
#endif
}
SS_HD float fdiv(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  volatile float r = a / b;
  return r;
#endif
}
SS_HD float ffma(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
SS_HD float fsqrt(float a) {
#ifdef __CUDA_ARCH__
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}
SS_HD float bits_to_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

SS_HD uint32_t float_to_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

// exp(x) in fp32 with <= 2 ulp error (tested against fp64 exp): Cody-Waite reduction by ln 2,
// degree-7 Taylor polynomial (|r| <= 0.35: truncation 5e-9 relative), exact scaling by 2^n as an
// add to the exponent field (p in [0.70, 1.42] and n in [-124, 128], with p < 1 when n = 128:
// p * 2^n is always a normal number). Branch-free: x is clamped, the edges are selects.
// x < -86 (results below 2^-124) returns 0, x > 88.72283 (above FLT_MAX) +inf; NaN stays NaN.
SS_HD float exp_f32(float x) {
  const float xc = fminf(fmaxf(x, -86.0f), 88.72283f);  // NaN -> -86 (selected away below)
  // n = rint(xc / ln2), an exact integer in [-124, 128], by the 1.5 * 2^23 shifter: the sum is in
  // [2^23, 2^24) where the fp32 grid is the integers, so RN rounds half-even exactly as rintf, and
  // its low mantissa bits are n + 2^22 (plain adds and an integer subtract instead of the GPU's
  // quarter-rate rounding and float->int conversions).
  const float sh = fadd(fmul(xc, 1.44269504f), 12582912.0f);
  const float n = fadd(sh, -12582912.0f);
  const int32_t ni = static_cast<int32_t>(float_to_bits(sh)) - 0x4B400000;
  float r = ffma(-n, 0.693359375f, xc);  // ln2 = 0.693359375 - 2.12194440e-4 (Cephes)
  r = ffma(-n, -2.12194440e-4f, r);
  float p = 1.0f / 5040.0f;
  p = ffma(p, r, 1.0f / 720.0f);
  p = ffma(p, r, 1.0f / 120.0f);
  p = ffma(p, r, 1.0f / 24.0f);
  p = ffma(p, r, 1.0f / 6.0f);
  p = ffma(p, r, 0.5f);
  p = ffma(p, r, 1.0f);
  p = ffma(p, r, 1.0f);
  float e = bits_to_float(float_to_bits(p) + (static_cast<uint32_t>(ni) << 23));
  e = x < -86.0f ? 0.0f : e;
  e = x > 88.72283f ? INFINITY : e;
  return x == x ? e : x;
}

// silu(g) = g / (1 + exp(-g)) in fp32 (HF's formula), with exp_f32.
SS_HD float silu_f32(float g) {
  return fdiv(g, fadd(1.0f, exp_f32(-g)));
}

// RMSNorm's inverse root: 1 / sqrt(mean + eps), two correctly rounded fp32 operations.
SS_HD float rms_inv(float mean, float eps) {
  return fdiv(1.0f, fsqrt(fadd(mean, eps)));
}

}  // namespace slidesparse::cuda::exact
