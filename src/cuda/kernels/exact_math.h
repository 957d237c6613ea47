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
// degree-7 Taylor polynomial (|r| <= 0.35: truncation 5e-9 relative), exact scaling by 2^n.
// Results below FLT_MIN (x < -87.33) return 0, above FLT_MAX (x > 88.72) +inf; NaN stays NaN.
SS_HD float exp_f32(float x) {
  if (!(x == x)) return x;
  if (x > 88.72283f) return INFINITY;
  if (x < -87.33654f) return 0.0f;
  const float n = rintf(fmul(x, 1.44269504f));  // |n| <= 128, exact integer
  float r = ffma(-n, 0.693359375f, x);          // ln2 = 0.693359375 - 2.12194440e-4 (Cephes)
  r = ffma(-n, -2.12194440e-4f, r);
  float p = 1.0f / 5040.0f;
  p = ffma(p, r, 1.0f / 720.0f);
  p = ffma(p, r, 1.0f / 120.0f);
  p = ffma(p, r, 1.0f / 24.0f);
  p = ffma(p, r, 1.0f / 6.0f);
  p = ffma(p, r, 0.5f);
  p = ffma(p, r, 1.0f);
  p = ffma(p, r, 1.0f);
  const int ni = static_cast<int>(n);
  if (ni > -126)  // p in [0.70, 1.42]: p * 2^n is a normal number, i.e. an exponent-field add
    return bits_to_float(float_to_bits(p) + (static_cast<uint32_t>(ni) << 23));
  const int h = ni / 2;  // two factors keep each power of two a normal number
  p = fmul(p, bits_to_float(static_cast<uint32_t>(h + 127) << 23));
  return fmul(p, bits_to_float(static_cast<uint32_t>(ni - h + 127) << 23));
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
