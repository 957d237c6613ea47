// Device helpers shared by the quantize-only and the fused quantize+lift kernels: per-row absmax,
// the scale rule of DESIGN.md (absmax/qmax, 1.0 for an all-zero row) and the element rounding
// (int8: rint half-even + clamp; fp8 e4m3: RNE, saturating), all IEEE fp32 without fast-math.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "cuda/cuda_check.h"
#include "slidesparse/dtype.h"
#include "slidesparse/pattern.h"
#include "slidesparse/quant.h"

namespace slidesparse::cuda::kernels {

__device__ __forceinline__ float to_f32(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ float to_f32(__half v) {
  return __half2float(v);
}

// The two 16-bit floats of a 32-bit word (element 2i in the low half) as fp32: for bf16 one
// shift and one mask (the compiler's per-element conversion moves the high half down first).
__device__ __forceinline__ float2 unpack2(uint32_t u, __nv_bfloat16) {
  return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xFFFF0000u));
}
__device__ __forceinline__ float2 unpack2(uint32_t u, __half) {
  __half2 h;
  *reinterpret_cast<uint32_t*>(&h) = u;
  return __half22float2(h);
}
template <class T>
__device__ __forceinline__ float2 unpack2(const T* e) {  // e: 4-byte aligned pair
  return unpack2(*reinterpret_cast<const uint32_t*>(e), T{});
}

__device__ __forceinline__ uint8_t quant_i8(float v, float scale) {
  float q = rintf(__fdiv_rn(v, scale));
  if (q != q) return 0;  // NaN -> 0, as the CPU reference
  q = fminf(fmaxf(q, -127.0f), 127.0f);
  return static_cast<uint8_t>(static_cast<int8_t>(q));
}
__device__ __forceinline__ uint8_t quant_e4m3(float v, float scale) {
  return static_cast<uint8_t>(
      __nv_cvt_float_to_fp8(__fdiv_rn(v, scale), __NV_SATFINITE, __NV_E4M3));
}

// The same codes without the IEEE division (quant8's fast path): y = v * inv (inv = 1/scale
// correctly rounded) is within 2^-23 relative of v/scale, and the correctly rounded quotient within
// half an ulp, so when y is farther than that from every rounding boundary of the target format
// both round to the same code; otherwise (about 1 element in 10^4) the exact path above decides.
// int8: |y| <= 127.01 so the two differ by < 2^-16; boundaries are k + 1/2; margin 2^-14.
// rint and the float->int conversion go through the 1.5 * 2^23 shifter S (full-rate adds instead
// of the quarter-rate rounding / conversion pipe): for |y| < 2^22, t = y + S is S + rint(y)
// exactly, so k = t - S = rint(y) and t's low byte is rint(y)'s two's-complement code. Fast when y
// is not within 2^-14 of a rounding boundary and |k| <= 127 (no clamp needed; always true for a
// row's own scale, |y| <= 127.01). Otherwise -- beyond 2^22 y is a multiple of 0.5 and k is y or
// fails a test; NaN and inf fail both -- the exact path decides (it clamps).
// e4m3: in its normal range (|y| >= 2^-6) the boundaries are the fp32 values whose 20 mantissa
// bits below e4m3's 3 are 0x80000; the two differ by <= 2.5 fp32 ulps; margin 64 ulps. Below 2^-6
// (e4m3 subnormals, grid 2^-9) the boundaries are the odd multiples of 2^-10, which
// |y| + 2^-6 maps onto the same bit test in the binade [2^-6, 2^-5), whose grid is also 2^-9: the
// add's rounding (<= 2^-30) and y's error (<= 2^-29 there) stay far inside the 64-ulp margin
// (2^-23 in that binade). (Tiny values are common in SwiGLU outputs: 0.3 % of a Gaussian gate x
// up row scaled to 448 falls below 2^-6, and each used to send its chunk down the exact path.)
// NaN, inf: exact path. Saturation (448 .. 512) has no boundary.
// tests/unit/test_quant_fast_path.cpp checks these margins on the CPU for every bf16 / fp16 input
// against sets of row scales (a host model of quant8_fast's tests: change both together).

// Block-wide max of non-negative floats (blockDim.x a multiple of 32, <= 1024).
__device__ __forceinline__ float block_max(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  int nw = blockDim.x >> 5;
  v = lane < nw ? red[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The scale rule of DESIGN.md for a row's absmax: absmax / qmax (1.0 for an all-zero row), and
// *inv its correctly rounded reciprocal (quant8's fast path). Every W8A8 row store uses it.
__device__ __forceinline__ float row_scale(float amax, float qmax, float* inv) {
  const float scale = amax > 0.0f ? __fdiv_rn(amax, qmax) : 1.0f;
  *inv = __frcp_rn(scale);
  return scale;
}

// Codes of 8 consecutive elements (the element rule of quant_row_store): the fast paths above with
// their tests folded into one flag, so the common case runs branch-free and the exact path (one
// chunk in ~10^3 for values off the grid, more where exact ties occur: x = amax / 2 gives int8
// y = 63.5) is needed; fp8 converts two codes per instruction. Same codes as quant_i8 /
// quant_e4m3 element by element. quant8_fast: the fast codes and *bad, the mask of the elements
// whose code the exact path must give (bit i: element i; 0: all fast); quant8_fix: the exact
// codes of just those elements patched in; quant8: the fast codes, then for fp8 quant8_fix, for
// int8 all eight codes again by division (quant8_exact_i8) when any is flagged. Measured (H100,
// eighteenth session): with quant8_fix on int8 too the int8 SwiGLU prologue ran 7 % slower in a
// Qwen2.5-7B prefill step (15.2 vs 14.2 ms; int8 chunks are rarely flagged), while fp8's, whose
// flags are common (SwiGLU rows have many values near e4m3's boundaries and ties), ran faster
// with it; the register-row norm calls quant8_fast + quant8_fix itself for both.
template <class TIn, bool FP8>
__device__ __forceinline__ uint2 quant8_fast(const TIn* e, float inv, uint32_t* bad_out) {
  uint32_t w[2];
  uint32_t bad = 0;
  if constexpr (FP8) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      uint32_t pair[2];
#pragma unroll
      for (int i = 0; i < 4; i += 2) {
        float2 y = unpack2(e + 4 * h + i);
        y.x = __fmul_rn(y.x, inv);
        y.y = __fmul_rn(y.y, inv);
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const float v = j ? y.y : y.x;
          float a = fabsf(v);
          if (a < 0.015625f) a = __fadd_rn(a, 0.015625f);  // subnormal grid -> [2^-6, 2^-5)
          const bool ok = a <= 512.0f && (__float_as_uint(a) & 0xFFFFFu) - (0x80000u - 64u) > 128u;
          bad |= (ok ? 0u : 1u) << (4 * h + i + j);
        }
        pair[i / 2] = __nv_cvt_float2_to_fp8x2(y, __NV_SATFINITE, __NV_E4M3);
      }
      w[h] = pair[0] | (pair[1] << 16);
    }
  } else {
    constexpr float kShift = 12582912.0f;  // S = 1.5 * 2^23, see above
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      uint32_t b[4];
      const float2 v01 = unpack2(e + 4 * h), v23 = unpack2(e + 4 * h + 2);
      const float v[4] = {v01.x, v01.y, v23.x, v23.y};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float y = __fmul_rn(v[i], inv);
        const float t = __fadd_rn(y, kShift);
        const float k = __fadd_rn(t, -kShift);
        const bool ok = fabsf(y - k) < 0.5f - 1.0f / 16384.0f && fabsf(k) <= 127.0f;
        bad |= (ok ? 0u : 1u) << (4 * h + i);
        b[i] = __float_as_uint(t);
      }
      w[h] = __byte_perm(__byte_perm(b[0], b[1], 0x0040), __byte_perm(b[2], b[3], 0x0040), 0x5410);
    }
  }
  *bad_out = bad;
  return make_uint2(w[0], w[1]);
}
// The exact codes of the elements in `bad` patched into q, one at a time (usually one), the
// element picked from the chunk's registers v (no indexed local array).
template <class TIn, bool FP8>
__device__ __forceinline__ uint2 quant8_fix(uint2 q, uint4 v, uint32_t bad, float scale) {
  while (bad) {
    const int i = __ffs(bad) - 1;
    bad &= bad - 1;
    const uint32_t word = i < 4 ? (i < 2 ? v.x : v.y) : (i < 6 ? v.z : v.w);
    const float2 f = unpack2(word, TIn{});
    const float x = i & 1 ? f.y : f.x;
    const uint32_t code = FP8 ? quant_e4m3(x, scale) : quant_i8(x, scale);
    const int sh = (i & 3) * 8;
    if (i < 4)
      q.x = (q.x & ~(0xFFu << sh)) | (code << sh);
    else
      q.y = (q.y & ~(0xFFu << sh)) | (code << sh);
  }
  return q;
}
// int8: all eight codes by division (quant8's int8 exact path).
template <class TIn>
__device__ __forceinline__ uint2 quant8_exact_i8(const TIn* e, float scale) {
  alignas(8) uint8_t q[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) q[i] = quant_i8(to_f32(e[i]), scale);
  return *reinterpret_cast<const uint2*>(q);
}
template <class TIn, bool FP8>  // e: 16-byte aligned
__device__ __forceinline__ uint2 quant8(const TIn* e, float scale, float inv) {
  uint32_t bad;
  const uint2 q = quant8_fast<TIn, FP8>(e, inv, &bad);
  if constexpr (FP8) {
    return bad ? quant8_fix<TIn, FP8>(q, *reinterpret_cast<const uint4*>(e), bad, scale) : q;
  } else {
    if (bad) return quant8_exact_i8<TIn>(e, scale);
    return q;
  }
}

// The lift of one quantized row: codes (shared memory, nblk * m codes, zero past the row's
// length) -> o [K_out], whole 2:4 windows (4 consecutive codes from an even source offset: two
// 16-bit shared-memory loads each), four windows per 16-byte store, zero past the lifted length.
__device__ __forceinline__ void lift_gather_store(const uint8_t* codes, int m, int L, int nblk,
                                                  uint8_t* __restrict__ o, int K_out) {
  const uint16_t* codes16 = reinterpret_cast<const uint16_t*>(codes);
  const int W = L / 4;  // windows per block
  for (int c = threadIdx.x * 16; c < K_out; c += blockDim.x * 16) {
    uint32_t w4[4];
    int w = c / 4, b = w / W, j = w - b * W;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int src2 = (b * m + 2 * j) >> 1;  // even source offset, in 16-bit units
      w4[i] = b < nblk ? (static_cast<uint32_t>(codes16[src2]) |
                          (static_cast<uint32_t>(codes16[src2 + 1]) << 16))
                       : 0u;
      if (++j == W) {
        j = 0;
        ++b;
      }
    }
    *reinterpret_cast<uint4*>(o + c) = make_uint4(w4[0], w4[1], w4[2], w4[3]);
  }
}

// 6:8 (m = 8, lifted block 12): the three windows of one block of 8 codes q (codes 0-3, 2-5, 4-7)
// are 12 consecutive output bytes, written as three 4-byte stores (o is 4-byte aligned).
__device__ __forceinline__ bool is_lift68(int m, int L) {
  return m == 8 && L == 12;
}
__device__ __forceinline__ void store_windows68(uint8_t* o, uint2 q) {
  uint32_t* d = reinterpret_cast<uint32_t*>(o);
  d[0] = q.x;
  d[1] = __funnelshift_r(q.x, q.y, 16);  // codes 2..5
  d[2] = q.y;
}
// Zero bytes [from, K_out) of an output row (from and K_out multiples of 4).
__device__ __forceinline__ void zero_tail4(uint8_t* o, int from, int K_out) {
  for (int c = from + threadIdx.x * 4; c < K_out; c += blockDim.x * 4)
    *reinterpret_cast<uint32_t*>(o + c) = 0u;
}

// The second half of a row's quantization, shared by every kernel that ends in a W8A8 operand
// (quantize, quantize+lift, and the fused RMSNorm / SwiGLU prologues), so that they agree bit for
// bit: the row [K] in shared memory (written by this CTA, not yet published), each thread's
// partial absmax `amax` -> per-token scale (*scale_out) and the codes of one output row o
// [K_out], plain (columns >= K zero) or gathered through the lift (LIFT; `codes` is shared scratch
// of at least K_pad + 8 bytes). The row area holds K rounded up to 8 elements, those >= K zero
// (+0.0: code 0), so that whole 16-byte chunks are quantized without masks.
template <class TIn, bool FP8, bool LIFT>
__device__ __forceinline__ void quant_row_store(const TIn* row, float amax, int Ki, int m, int L,
                                                int nblk, uint8_t* __restrict__ o, int K_out,
                                                float* scale_out, float qmax, float* red,
                                                uint8_t* codes) {
  amax = block_max(amax, red);  // includes the __syncthreads that publishes row[]
  float inv;
  const float scale = row_scale(amax, qmax, &inv);
  if (threadIdx.x == 0) *scale_out = scale;
  // The row is read 8 elements per 16-byte shared-memory load; chunks past Kr read as zero.
  const int Kr = (Ki + 7) & ~7;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  if (!LIFT) {
    for (int c = threadIdx.x * 16; c < K_out; c += blockDim.x * 16) {
      alignas(16) TIn e[16];
      reinterpret_cast<uint4*>(e)[0] = c < Kr ? *reinterpret_cast<const uint4*>(row + c) : zero;
      reinterpret_cast<uint4*>(e)[1] =
          c + 8 < Kr ? *reinterpret_cast<const uint4*>(row + c + 8) : zero;
      const uint2 lo = quant8<TIn, FP8>(e, scale, inv), hi = quant8<TIn, FP8>(e + 8, scale, inv);
      *reinterpret_cast<uint4*>(o + c) = make_uint4(lo.x, lo.y, hi.x, hi.y);
    }
    return;
  }
  // LIFT: quantize each source element once into shared memory (lifting duplicates elements, so
  // quantizing after the gather would cost gamma times the divisions), zero codes up to K_pad,
  // then gather whole 2:4 windows: 4 consecutive codes from an even source offset = two 16-bit
  // shared-memory loads per window.
  const int Kp = nblk * m;
  if (is_lift68(m, L)) {  // one block per 8-element chunk: its windows go straight out
    for (int c = threadIdx.x * 8; c < Kp; c += blockDim.x * 8) {
      alignas(16) TIn e[8];
      *reinterpret_cast<uint4*>(e) = c < Kr ? *reinterpret_cast<const uint4*>(row + c) : zero;
      store_windows68(o + c / 8 * 12, quant8<TIn, FP8>(e, scale, inv));
    }
    zero_tail4(o, nblk * 12, K_out);
    return;
  }
  for (int c = threadIdx.x * 8; c < Kp; c += blockDim.x * 8) {
    alignas(16) TIn e[8];
    *reinterpret_cast<uint4*>(e) = c < Kr ? *reinterpret_cast<const uint4*>(row + c) : zero;
    *reinterpret_cast<uint2*>(codes + c) = quant8<TIn, FP8>(e, scale, inv);
  }
  __syncthreads();
  lift_gather_store(codes, m, L, nblk, o, K_out);
}

// One CTA per row of out [M_pad, K_out] (codes: int8 or e4m3). Rows >= M are written as zero.
// The row of x [M, K] is read once into shared memory with 16-byte loads (when K % 8 == 0), the
// absmax reduced, then out is written 16 bytes per thread-iteration, gathering through the lift
// (LIFT) or the identity (quantize only). scales[M] receives the per-token scales.
template <class TIn, bool FP8, bool LIFT>
__global__ void quant_rows_kernel(const TIn* __restrict__ x, int64_t M, int64_t K, int m, int L,
                                  int64_t blocks, uint8_t* __restrict__ out, int K_out,
                                  float* __restrict__ scales, float qmax) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ float red[32];
  TIn* row = reinterpret_cast<TIn*>(smem_raw);
  const int64_t r = blockIdx.x;
  uint8_t* o = out + r * K_out;
  if (r >= M) {
    for (int c = threadIdx.x * 16; c < K_out; c += blockDim.x * 16)
      *reinterpret_cast<uint4*>(o + c) = make_uint4(0, 0, 0, 0);
    return;
  }
  const TIn* xr = x + r * K;
  float amax = 0.0f;
  if ((K & 7) == 0 && (reinterpret_cast<uintptr_t>(x) & 15) == 0) {
    for (int64_t c = threadIdx.x * 8; c < K; c += blockDim.x * 8) {
      uint4 v = __ldg(reinterpret_cast<const uint4*>(xr + c));
      *reinterpret_cast<uint4*>(row + c) = v;
      const TIn* e = reinterpret_cast<const TIn*>(&v);
#pragma unroll
      for (int i = 0; i < 8; ++i) amax = fmaxf(amax, fabsf(to_f32(e[i])));
    }
  } else {
    for (int64_t c = threadIdx.x; c < K; c += blockDim.x) {
      TIn v = xr[c];
      row[c] = v;
      amax = fmaxf(amax, fabsf(to_f32(v)));
    }
  }
  const int Ki = static_cast<int>(K);
  for (int c = Ki + threadIdx.x; c < ((Ki + 7) & ~7); c += blockDim.x) row[c] = TIn(0.0f);
  uint8_t* codes = smem_raw + ((static_cast<size_t>(K) * sizeof(TIn) + 15) & ~size_t{15});
  quant_row_store<TIn, FP8, LIFT>(row, amax, Ki, m, L, static_cast<int>(blocks), o, K_out,
                                  scales + r, qmax, red, codes);
}

constexpr int kQuantThreads = 256;
constexpr size_t kQuantMaxSmem = 200 * 1024;

// Dynamic shared memory of one CTA: the bf16/fp16 row (+ its codes when lifting).
inline size_t quant_rows_smem(int64_t K, size_t in_size, bool lift) {
  size_t row = (static_cast<size_t>(K) * in_size + 15) & ~size_t{15};
  // codes: K padded to the block size m <= 16 and to 8-byte chunks, with margin.
  return lift ? row + ((static_cast<size_t>(K) + 47) & ~size_t{15}) : row;
}
template <class TIn, bool FP8, bool LIFT>
Status launch_quant_rows_t(const void* x, int64_t M, int64_t K, Pattern p, void* out, int64_t M_pad,
                           int64_t K_out, float* scales, cudaStream_t stream) {
  auto kernel = quant_rows_kernel<TIn, FP8, LIFT>;
  size_t smem = quant_rows_smem(K, sizeof(TIn), LIFT);
  static int configured = 0;  // opt-in limit set for this instantiation (bytes)
  if (configured == 0) {
    int optin = 0;
    SS_RETURN_IF_ERROR(smem_optin_bytes(&optin));
    optin = std::min(optin, static_cast<int>(kQuantMaxSmem));
    SS_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
    configured = optin;
  }
  if (smem > static_cast<size_t>(configured))
    return unsupported("quantize: K=" + std::to_string(K) + " needs " + std::to_string(smem) +
                       " bytes of shared memory per row, the GPU allows " +
                       std::to_string(configured));
  kernel<<<static_cast<unsigned>(M_pad), kQuantThreads, smem, stream>>>(
      static_cast<const TIn*>(x), M, K, p.m, p.lifted_block(), p.blocks(K),
      static_cast<uint8_t*>(out), static_cast<int>(K_out), scales, FP8 ? 448.0f : 127.0f);
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

// Validation + dispatch over (activation dtype, int8/fp8) for one LIFT value.
template <bool LIFT>
Status launch_quant_rows(const char* op, DType in, QuantMode q, Pattern p, const void* x, int64_t M,
                         int64_t K, void* out, int64_t M_pad, int64_t K_out, float* scales,
                         cudaStream_t stream) {
  if (in != DType::kBF16 && in != DType::kF16)
    return unsupported(std::string(op) + ": activation dtype " + dtype_name(in) +
                       " not supported (expected BF16 or F16)");
  if (q == QuantMode::kNone)
    return invalid_argument(std::string(op) + ": quant mode none has no codes");
  if (M < 0 || K <= 0 || M_pad < M || M_pad > 0x7fffffff)
    return invalid_argument(std::string(op) + ": bad sizes M=" + std::to_string(M) +
                            " K=" + std::to_string(K) + " M_pad=" + std::to_string(M_pad));
  int64_t need = LIFT ? p.k_lifted(K) : K;
  if (K_out < need || K_out % 16 != 0)
    return invalid_argument(std::string(op) + ": K_out=" + std::to_string(K_out) +
                            " must be a multiple of 16 and >= " + std::to_string(need));
  if (K_out > 0x7fffffff)
    return unsupported(std::string(op) + ": K_out=" + std::to_string(K_out) + " too large");
  if (quant_rows_smem(K, 2, LIFT) > kQuantMaxSmem)
    return unsupported(std::string(op) + ": K=" + std::to_string(K) +
                       " exceeds the shared-memory row (" + std::to_string(kQuantMaxSmem) +
                       " bytes)");
  if (reinterpret_cast<uintptr_t>(out) % 16 != 0)
    return invalid_argument(std::string(op) + ": output pointer must be 16-byte aligned");
  if (M_pad == 0) return Status::Ok();
  const bool fp8 = q == QuantMode::kFp8;
  if (in == DType::kBF16) {
    return fp8 ? launch_quant_rows_t<__nv_bfloat16, true, LIFT>(x, M, K, p, out, M_pad, K_out,
                                                                scales, stream)
               : launch_quant_rows_t<__nv_bfloat16, false, LIFT>(x, M, K, p, out, M_pad, K_out,
                                                                 scales, stream);
  }
  return fp8 ? launch_quant_rows_t<__half, true, LIFT>(x, M, K, p, out, M_pad, K_out, scales,
                                                       stream)
             : launch_quant_rows_t<__half, false, LIFT>(x, M, K, p, out, M_pad, K_out, scales,
                                                        stream);
}

}  // namespace slidesparse::cuda::kernels
