// Row-per-CTA machinery of the engine's normalization / activation kernels and of their fused
// prologues: one CTA produces one T-rounded row (residual add + RMSNorm, or SwiGLU) in shared
// memory and then writes it either as a plain [M, C] output or straight into a linear layer's
// InputSlot (quantize, quantize + lift, or lift only). The plain and fused paths run the same
// element code and end in the same quant_row_store as launch_quantize / launch_quant_lift, so a
// fused prologue is bit-identical to the two-step path by construction.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "cuda/cuda_check.h"
#include "cuda/kernels/exact_math.h"
#include "cuda/kernels/quant_common.cuh"
#include "slidesparse/linear.h"

namespace slidesparse::cuda::kernels {

template <class T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) {
  return __float2half_rn(v);
}
template <class T>
__device__ __forceinline__ float round_to(float v) {
  return to_f32(from_f32<T>(v));
}
// (T(a), T(b)) into out[0..1] with one packed conversion.
template <class T>
__device__ __forceinline__ void pack2_rn(float a, float b, T* out) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    *reinterpret_cast<__nv_bfloat162*>(out) = __floats2bfloat162_rn(a, b);
  else
    *reinterpret_cast<__half2*>(out) = __floats2half2_rn(a, b);
}

// exp(-g) from the SFU: ex2.approx(t) with t = -g * log2(e) split into t_hi + t_lo (the product's
// rounding error recovered by an fma, plus log2(e)'s own fp32 error), e = 2^t_hi * (1 + t_lo ln2).
// Relative error vs exp(-g): ex2.approx's (<= 2 ulp) + a few roundings, ~2^-21.5, for results in
// [2^-126, 2^128); smaller ones flush to 0 (then 1 + e = 1 exactly, as with exact::exp_f32, which
// returns 0 below 2^-124), larger ones are inf. NaN / inf inputs give NaN (t_lo = inf - inf).
__device__ __forceinline__ float exp_neg_sfu(float g) {
  const float th = __fmul_rn(-g, 1.44269504f);
  const float tl = __fmaf_rn(-g, 1.925963e-8f, __fmaf_rn(-g, 1.44269504f, -th));
  float e;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(th));
  return __fmaf_rn(e, __fmul_rn(tl, 0.693147182f), e);
}

// Exact SwiGLU (SiluMath::kExact): T(silu(g)) = T(g / d), d = 1 + exp(-g), bit-identical to
// exact::silu_f32 rounded to T (the CPU reference), computed fast: exp by the SFU (exp_neg_sfu) and
// the division as g * rcp.approx(d) (__fdividef's arithmetic, <= 2 ulp for d <= 2^126). The fast
// quotient is within ~2^-20 relative (< 32 fp32 ulps) of the reference's exp_f32 + IEEE-division
// quotient, so when it is more than 64 ulps away from every rounding boundary of T (a midpoint of
// T's grid) both round to the same T value. Otherwise (near a boundary: ~0.2 % of bf16 and ~1.6 %
// of fp16 elements; T subnormal or overflow range; NaN; huge d) the reference arithmetic decides.
// silu_t_unrounded: the fast y before that final rounding, or (slow path) the T value itself, which
// rounding leaves unchanged; silu_mul8 rounds two per conversion, silu_mul_elem one.
template <class T>
__device__ __forceinline__ float silu_t_unrounded(float g) {
  const float d = __fadd_rn(1.0f, exp_neg_sfu(g));
  float r;  // d >= 1 (or NaN): rcp.approx is what __fdividef uses for d <= 2^126, minus its
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(d));  // rescaling of tiny divisors
  const float y = __fmul_rn(g, r);
  const uint32_t b = __float_as_uint(y);
  const float a = fabsf(y);
  bool fast;
  if constexpr (sizeof(T) == 2 && std::is_same_v<T, __half>)
    fast = a >= 6.103515625e-05f && a <= 65504.0f && (b & 0x1FFFu) - (0x1000u - 64u) > 128u;
  else
    fast = a >= 1.17549435e-38f && (b & 0xFFFFu) - (0x8000u - 64u) > 128u;
  if (d < 1e30f && fast) return y;
  return round_to<T>(__fdiv_rn(g, __fadd_rn(1.0f, exact::exp_f32(-g))));
}

// Fast SwiGLU (SiluMath::kFast, the default): silu(g) = g * rcp.approx(1 + ex2.approx(-g log2 e)),
// seven instructions and no boundary test. Relative error below 2^-17 (ex2.approx ~2^-22, the
// rounding of its argument <= 2^-17.5 at |g| <= 88, rcp.approx 1 ulp), far under T's half ulp
// (bf16 2^-9, fp16 2^-11): T(y) is the reference's T(silu(g)) or, when silu(g) lies within 2^-17
// of a rounding boundary of T, its neighbour -- at most 1 ulp of T apart (engine_kernels_test
// checks every finite 16-bit input). The reciprocal is taken of d / 4 and scaled back by 1/4 (both
// exact but for a subnormal 1/d, which keeps >= 21 bits) so that d up to inf works: rcp.approx
// flushes 1/d to 0 for d > 2^126, where the reference's quotient is still a normal number. The
// scaling goes on 4/d, not on g * 4/d, which would overflow for g >= 2^126 (bf16 has such inputs).
// Edges as exact::silu_f32: exp(-g) flushes to 0 (y = g) for large g, is inf for g < -88.7
// (y = -0), NaN and -inf give NaN.
__device__ __forceinline__ float silu_fast(float g) {
  float e, r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(__fmul_rn(g, -1.44269504f)));
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(__fmul_rn(__fadd_rn(1.0f, e), 0.25f)));
  return __fmul_rn(g, __fmul_rn(r, 0.25f));
}

// silu(g) before the rounding to T: the exact variant's result or the fast one's.
template <class T, bool EXACT>
__device__ __forceinline__ float silu_unrounded(float g) {
  if constexpr (EXACT)
    return silu_t_unrounded<T>(g);
  else
    return silu_fast(g);
}

// HF SwiGLU element: T(T(silu(g)) * u).
template <class T, bool EXACT>
__device__ __forceinline__ T silu_mul_elem(T g, T u) {
  return from_f32<T>(__fmul_rn(round_to<T>(silu_unrounded<T, EXACT>(to_f32(g))), to_f32(u)));
}
// Eight of them, every rounding two per conversion instruction (cvt.rn.{bf16,f16}x2.f32).
// amax (optional): max(*amax, max |h|), taken on the fp32 products and rounded once (T rounding
// is monotonic and symmetric: max |T(p)| = T(max |p|)).
template <class T, bool EXACT>
__device__ __forceinline__ void silu_mul8(const T* g, const T* u, T* h, float* amax = nullptr) {
  float m = 0.0f;
#pragma unroll
  for (int i = 0; i < 8; i += 2) {
    T s[2];
    pack2_rn<T>(silu_unrounded<T, EXACT>(to_f32(g[i])), silu_unrounded<T, EXACT>(to_f32(g[i + 1])),
                s);
    const float p0 = __fmul_rn(to_f32(s[0]), to_f32(u[i]));
    const float p1 = __fmul_rn(to_f32(s[1]), to_f32(u[i + 1]));
    pack2_rn<T>(p0, p1, h + i);
    m = fmaxf(m, fmaxf(fabsf(p0), fabsf(p1)));
  }
  if (amax) *amax = fmaxf(*amax, round_to<T>(m));
}

// RMSNorm's two element steps on 8 elements, shared by the norm kernels (row_kernel, the
// register-row kernel of add_rmsnorm_prologue.cu) so that they agree bit for bit:
// sumsq8: ss += x^2 in fp64 (a square of a 16-bit float is exact in fp64);
// norm8: x <- T(w * T(x * inv)) in place, amax = max(amax, |x|) of the results;
// norm8x2: norm8 with both roundings two per conversion (cvt.rn.{bf16x2,f16x2}.f32 rounds each
// half as the single conversion does) and the absmax kept as a T pair, max of |T| values (exact;
// __hmax2 skips a NaN as fmaxf does): the same values.
template <class T>
__device__ __forceinline__ double sumsq8(const T* x, double ss) {
#pragma unroll
  for (int i = 0; i < 8; i += 2) {
    const float2 v = unpack2(x + i);
    const double v0 = v.x, v1 = v.y;
    ss = fma(v0, v0, ss);
    ss = fma(v1, v1, ss);
  }
  return ss;
}
template <class T>
__device__ __forceinline__ void norm8(T* x, const T* w, float inv, float& amax) {
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float n = round_to<T>(__fmul_rn(to_f32(x[i]), inv));
    x[i] = from_f32<T>(__fmul_rn(to_f32(w[i]), n));
    amax = fmaxf(amax, fabsf(to_f32(x[i])));
  }
}

template <class T>
using T2 = std::conditional_t<std::is_same_v<T, __nv_bfloat16>, __nv_bfloat162, __half2>;
template <class T>
__device__ __forceinline__ void norm8x2(T* x, const T* w, float inv, T2<T>& amax2) {
#pragma unroll
  for (int i = 0; i < 8; i += 2) {
    alignas(4) T n[2];
    const float2 xv = unpack2(x + i), wv = unpack2(w + i);
    pack2_rn<T>(__fmul_rn(xv.x, inv), __fmul_rn(xv.y, inv), n);
    const float2 nv = unpack2(n);
    pack2_rn<T>(__fmul_rn(wv.x, nv.x), __fmul_rn(wv.y, nv.y), x + i);
    amax2 = __hmax2(amax2, __habs2(*reinterpret_cast<const T2<T>*>(x + i)));
  }
}

// Block-wide sum of doubles (every thread gets the total; fixed order for a given blockDim).
__device__ __forceinline__ double block_sum(double v, double* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  const int nw = blockDim.x >> 5;
  v = lane < nw ? red[lane] : 0.0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// What a row CTA writes.
enum RowOut : int {
  kRowPlain = 0,      // y [M, C] in T
  kRowQuant = 1,      // slot codes int8/e4m3 [M_pad, K_out], columns >= C zero, + scales
  kRowQuantLift = 2,  // slot codes int8/e4m3 gathered through the lift, + scales
  kRowLift = 3,       // slot values in T gathered through the lift (sparse W16A16)
};
// What a row CTA computes.
enum RowOp : int {
  kOpAddRmsNorm = 0,    // x = T(x + d) (when d), row = T(w * T(x * rms_inv))
  kOpSiluMul = 1,       // row = T(T(silu(gu[:, :C])) * gu[:, C:2C]), fast silu (SiluMath::kFast)
  kOpSiluMulExact = 2,  // the same with the exact silu (SiluMath::kExact)
};

struct RowArgs {
  void* x = nullptr;        // [M, C] residual stream (add + RMSNorm), updated in place when d
  const void* d = nullptr;  // [M, C] or null
  const void* w = nullptr;  // [C] norm weight
  float eps = 0;
  const void* gu = nullptr;  // [M, ld] gate|up (SwiGLU)
  int64_t ld = 0;
  int64_t M = 0;
  int C = 0;            // row length (C or F)
  void* y = nullptr;    // kRowPlain: [M, C]
  void* out = nullptr;  // slot codes / values [M_pad, K_out]
  float* scales = nullptr;
  int K_out = 0, m = 4, L = 4, nblk = 0;  // slot geometry (lift pattern, blocks of C)
  float qmax = 127.0f;
  bool vec = false;  // 16-byte loads/stores (C % 8 == 0, aligned pointers and strides)
};

// Dynamic shared memory of a row CTA: the T row, zero-padded to K_pad (<= C + 15), then the
// codes scratch of the quantize+lift store.
__host__ __device__ inline size_t row_smem_bytes(int64_t C, int out_mode) {
  size_t row = (static_cast<size_t>(C + 16) * 2 + 15) & ~size_t{15};
  return out_mode == kRowQuantLift ? row + ((static_cast<size_t>(C) + 47) & ~size_t{15}) : row;
}
constexpr size_t kRowMaxSmem = 200 * 1024;

template <class T>
union Pack8 {
  uint4 u;
  T e[8];
};

template <class T, int OP, int OUT, bool FP8>
__global__ void __launch_bounds__(512) row_kernel(RowArgs a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ float red[32];
  __shared__ double dred[32];
  T* row = reinterpret_cast<T*>(smem_raw);
  const int64_t r = blockIdx.x;
  const int C = a.C;
  const int tid = threadIdx.x, nt = blockDim.x;
  if (OUT != kRowPlain && r >= a.M) {  // padding rows of the slot are zero
    const int bytes = a.K_out * (OUT == kRowLift ? 2 : 1);
    uint8_t* o = static_cast<uint8_t*>(a.out) + r * bytes;
    for (int c = tid * 16; c < bytes; c += nt * 16)
      *reinterpret_cast<uint4*>(o + c) = make_uint4(0, 0, 0, 0);
    return;
  }
  float amax = 0.0f;  // this thread's partial absmax of the produced row
  if constexpr (OP == kOpSiluMul || OP == kOpSiluMulExact) {
    constexpr bool kExact = OP == kOpSiluMulExact;
    const T* g = static_cast<const T*>(a.gu) + r * a.ld;
    const T* u = g + C;
    if (a.vec) {
      for (int c = tid * 8; c < C; c += nt * 8) {
        Pack8<T> pg, pu, ph;
        pg.u = __ldg(reinterpret_cast<const uint4*>(g + c));
        pu.u = __ldg(reinterpret_cast<const uint4*>(u + c));
        silu_mul8<T, kExact>(pg.e, pu.e, ph.e, &amax);
        if constexpr (OUT == kRowPlain)
          *reinterpret_cast<uint4*>(static_cast<T*>(a.y) + r * C + c) = ph.u;
        else
          *reinterpret_cast<uint4*>(row + c) = ph.u;
      }
    } else {
      for (int c = tid; c < C; c += nt) {
        T h = silu_mul_elem<T, kExact>(g[c], u[c]);
        amax = fmaxf(amax, fabsf(to_f32(h)));
        if constexpr (OUT == kRowPlain)
          static_cast<T*>(a.y)[r * C + c] = h;
        else
          row[c] = h;
      }
    }
    if constexpr (OUT == kRowPlain) return;
  } else {
    T* x = static_cast<T*>(a.x) + r * C;
    const T* d = a.d ? static_cast<const T*>(a.d) + r * C : nullptr;
    const T* w = static_cast<const T*>(a.w);
    // Pass 1: residual add (rounded to T, written back), sum of squares in fp64: each square of a
    // 16-bit float is exact in fp64, so the sum is order-independent to ~2^-50 relative and the
    // fp32 mean below is the correctly rounded mean of the T-rounded row.
    double ss = 0.0;
    if (a.vec) {
      for (int c = tid * 8; c < C; c += nt * 8) {
        Pack8<T> px;
        px.u = *reinterpret_cast<const uint4*>(x + c);
        if (d) {
          Pack8<T> pd;
          pd.u = __ldg(reinterpret_cast<const uint4*>(d + c));
#pragma unroll
          for (int i = 0; i < 8; ++i)
            px.e[i] = from_f32<T>(__fadd_rn(to_f32(px.e[i]), to_f32(pd.e[i])));
          *reinterpret_cast<uint4*>(x + c) = px.u;
        }
        ss = sumsq8(px.e, ss);
        *reinterpret_cast<uint4*>(row + c) = px.u;
      }
    } else {
      for (int c = tid; c < C; c += nt) {
        T v = x[c];
        if (d) {
          v = from_f32<T>(__fadd_rn(to_f32(v), to_f32(d[c])));
          x[c] = v;
        }
        const double dv = to_f32(v);
        ss = fma(dv, dv, ss);
        row[c] = v;
      }
    }
    ss = block_sum(ss, dred);
    const float mean = __double2float_rn(__ddiv_rn(ss, static_cast<double>(C)));
    const float inv = exact::rms_inv(mean, a.eps);
    // Pass 2 (each thread revisits its own elements: no barrier needed): y = T(w * T(x * inv)).
    if (a.vec) {
      for (int c = tid * 8; c < C; c += nt * 8) {
        Pack8<T> px, pw;
        px.u = *reinterpret_cast<const uint4*>(row + c);
        pw.u = __ldg(reinterpret_cast<const uint4*>(w + c));
        norm8(px.e, pw.e, inv, amax);
        if constexpr (OUT == kRowPlain)
          *reinterpret_cast<uint4*>(static_cast<T*>(a.y) + r * C + c) = px.u;
        else
          *reinterpret_cast<uint4*>(row + c) = px.u;
      }
    } else {
      for (int c = tid; c < C; c += nt) {
        const float n = round_to<T>(__fmul_rn(to_f32(row[c]), inv));
        T yv = from_f32<T>(__fmul_rn(to_f32(w[c]), n));
        amax = fmaxf(amax, fabsf(to_f32(yv)));
        if constexpr (OUT == kRowPlain)
          static_cast<T*>(a.y)[r * C + c] = yv;
        else
          row[c] = yv;
      }
    }
    if constexpr (OUT == kRowPlain) return;
  }
  // The row is in shared memory (each thread wrote its own part; the stores below sync first).
  if constexpr (OUT == kRowQuant || OUT == kRowQuantLift) {
    for (int c = C + tid; c < ((C + 7) & ~7); c += nt) row[c] = from_f32<T>(0.0f);
    uint8_t* codes = smem_raw + row_smem_bytes(C, kRowQuant);
    quant_row_store<T, FP8, OUT == kRowQuantLift>(row, amax, C, a.m, a.L, a.nblk,
                                                  static_cast<uint8_t*>(a.out) + r * a.K_out,
                                                  a.K_out, a.scales + r, a.qmax, red, codes);
  } else if constexpr (OUT == kRowLift) {
    // Same gather as launch_lift: X'[b*L + 4j + t] = X[b*m + 2j + t], zero past C (the row is
    // zero-padded to K_pad) and past the lifted length; two windows (8 values) per 16-byte store.
    const int Kp = a.nblk * a.m;
    for (int c = C + tid; c < Kp; c += nt) row[c] = from_f32<T>(0.0f);
    __syncthreads();
    const uint32_t* row32 = reinterpret_cast<const uint32_t*>(row);
    T* o = static_cast<T*>(a.out) + r * a.K_out;
    const int W = a.L / 4;
    for (int c = tid * 8; c < a.K_out; c += nt * 8) {
      uint32_t v[4];
      int wdw = c / 4, b = wdw / W, j = wdw - b * W;
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int src2 = (b * a.m + 2 * j) >> 1;  // even source offset, in pairs
        v[2 * i] = b < a.nblk ? row32[src2] : 0u;
        v[2 * i + 1] = b < a.nblk ? row32[src2 + 1] : 0u;
        if (++j == W) {
          j = 0;
          ++b;
        }
      }
      *reinterpret_cast<uint4*>(o + c) = make_uint4(v[0], v[1], v[2], v[3]);
    }
  }
}

// Threads per row CTA: two 8-element chunks per thread where possible (two 16-byte loads in
// flight per input, and small CTAs so that many rows in different phases share an SM), 64..512.
inline int row_threads(int64_t C) {
  int64_t chunks = (C + 15) / 16;
  int64_t t = (chunks + 31) / 32 * 32;
  return static_cast<int>(std::min<int64_t>(512, std::max<int64_t>(64, t)));
}

template <class T, int OP, int OUT, bool FP8>
Status launch_row_t(const RowArgs& a, int64_t grid, cudaStream_t stream) {
  auto kernel = row_kernel<T, OP, OUT, FP8>;
  const size_t smem = OUT == kRowPlain && OP != kOpAddRmsNorm ? 0 : row_smem_bytes(a.C, OUT);
  static int configured = 0;  // opt-in shared-memory limit set for this instantiation (bytes)
  if (smem > 48 * 1024 && configured == 0) {
    int optin = 0;
    SS_RETURN_IF_ERROR(smem_optin_bytes(&optin));
    optin = std::min(optin, static_cast<int>(kRowMaxSmem));
    SS_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
    configured = optin;
  }
  if (smem > 48 * 1024 && smem > static_cast<size_t>(configured))
    return unsupported("row length " + std::to_string(a.C) + " needs " + std::to_string(smem) +
                       " bytes of shared memory per CTA, the GPU allows " +
                       std::to_string(configured));
  kernel<<<static_cast<unsigned>(grid), row_threads(a.C), smem, stream>>>(a);
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

// Dispatch of the slot outputs over T (BF16/F16) and the slot's kind (kRowQuant, kRowQuantLift,
// kRowLift); the plain outputs call launch_row_t directly.
template <int OP, class TT>
Status launch_row_slot_t(const RowArgs& a, int out_mode, bool fp8, int64_t grid,
                         cudaStream_t stream) {
  switch (out_mode) {
    case kRowQuant:
      return fp8 ? launch_row_t<TT, OP, kRowQuant, true>(a, grid, stream)
                 : launch_row_t<TT, OP, kRowQuant, false>(a, grid, stream);
    case kRowQuantLift:
      return fp8 ? launch_row_t<TT, OP, kRowQuantLift, true>(a, grid, stream)
                 : launch_row_t<TT, OP, kRowQuantLift, false>(a, grid, stream);
    default:
      return launch_row_t<TT, OP, kRowLift, false>(a, grid, stream);
  }
}
template <int OP>
Status launch_row_slot(DType t, const RowArgs& a, int out_mode, bool fp8, int64_t grid,
                       cudaStream_t stream) {
  if (grid == 0) return Status::Ok();
  return t == DType::kBF16 ? launch_row_slot_t<OP, __nv_bfloat16>(a, out_mode, fp8, grid, stream)
                           : launch_row_slot_t<OP, __half>(a, out_mode, fp8, grid, stream);
}

inline bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}

// Validates a layer's InputSlot for rows of length C produced in dtype t (M rows) and fills the
// slot fields of `a`; *out_mode receives kRowQuant, kRowQuantLift or kRowLift.
inline Status row_slot_setup(const std::string& op, DType t, int64_t M, int64_t C,
                             const InputSlot& s, RowArgs* a, int* out_mode) {
  if (!s.codes)
    return invalid_argument(op +
                            ": the slot has no codes (a dense W16A16 layer has no prologue: "
                            "write the activation and call forward)");
  if (s.M_pad < M || s.M_pad > 0x7fffffff)
    return invalid_argument(op + ": slot M_pad=" + std::to_string(s.M_pad) +
                            " must be >= M=" + std::to_string(M));
  if (!aligned16(s.codes)) return invalid_argument(op + ": slot codes must be 16-byte aligned");
  if (s.lifted) SS_RETURN_IF_ERROR(Pattern::validate(s.lift.n, s.lift.m));
  const Pattern p = s.lifted ? s.lift : Pattern{};
  int64_t need = s.lifted ? p.k_lifted(C) : C;
  if (s.quant == QuantMode::kNone) {
    if (!s.lifted)
      return invalid_argument(op + ": a W16A16 slot must be lifted (dense W16A16 has no slot)");
    if (s.dtype != t)
      return invalid_argument(op + ": slot dtype " + dtype_name(s.dtype) +
                              " differs from the activation dtype " + dtype_name(t));
    if (s.K_out < need || s.K_out % 8 != 0 || s.K_out > 0x3fffffff)
      return invalid_argument(op + ": slot K_out=" + std::to_string(s.K_out) +
                              " must be a multiple of 8 and >= " + std::to_string(need));
    *out_mode = kRowLift;
  } else {
    if (s.dtype != quant_storage_dtype(s.quant))
      return invalid_argument(op + ": slot dtype " + dtype_name(s.dtype) +
                              " does not match quant " + quant_mode_name(s.quant));
    if (!s.scales) return invalid_argument(op + ": a W8A8 slot needs a scales pointer");
    if (s.K_out < need || s.K_out % 16 != 0 || s.K_out > 0x7fffffff)
      return invalid_argument(op + ": slot K_out=" + std::to_string(s.K_out) +
                              " must be a multiple of 16 and >= " + std::to_string(need));
    // 2:4's lift is the identity: the plain quantize store writes the same codes.
    *out_mode = s.lifted && !(p.n == 2 && p.m == 4) ? kRowQuantLift : kRowQuant;
  }
  a->out = s.codes;
  a->scales = s.scales;
  a->K_out = static_cast<int>(s.K_out);
  a->m = p.m;
  a->L = p.lifted_block();
  a->nblk = static_cast<int>(p.blocks(C));
  a->qmax = s.quant == QuantMode::kNone ? 1.0f : quant_qmax(s.quant);
  if (row_smem_bytes(C, *out_mode) > kRowMaxSmem)
    return unsupported(op + ": row length " + std::to_string(C) +
                       " exceeds the shared-memory row (" + std::to_string(kRowMaxSmem) +
                       " bytes)");
  return Status::Ok();
}

inline Status check_16bit(const std::string& op, DType t) {
  if (t != DType::kBF16 && t != DType::kF16)
    return unsupported(op + ": dtype " + dtype_name(t) + " not supported (expected BF16 or F16)");
  return Status::Ok();
}

}  // namespace slidesparse::cuda::kernels
