// The launch both prefill attention kernels share (attention_prefill.cu,
// attention_prefill_sm90.cu): the dynamic shared memory opt-in once per kernel, the grid (q head,
// query block, sequence) and the softmax scale in the log2 domain; and their RoPE of q on load.
// Kernel: a __global__ function with the signature below.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda/cuda_check.h"

namespace slidesparse::cuda::kernels {

// The CTA's share of a prefill launch: grid x = q head, y = query block (heaviest, i.e. last,
// first), z = sequence; BR query rows per CTA, BC keys per tile.
template <class T, int HD>
struct PrefillBlock {
  int h, i0, q_rows, n_tiles;
  int64_t s, kv_end, ldkv;  // kv_end: keys 0 .. kv_end-1 are seen by some row of the block
  const T *qg, *kg, *vg;    // the block's first query row, its kv head's keys and values

  __device__ PrefillBlock(const T* q, int64_t ldq, const T* k_cache, const T* v_cache,
                          int64_t max_ctx, int L, int64_t pos0, int rep, int KV, int br, int bc) {
    h = blockIdx.x;
    i0 = (gridDim.y - 1 - blockIdx.y) * br;
    s = blockIdx.z;
    q_rows = min(br, L - i0);
    kv_end = pos0 + i0 + q_rows;
    n_tiles = static_cast<int>((kv_end + bc - 1) / bc);
    ldkv = static_cast<int64_t>(KV) * HD;
    qg = q + (s * L + i0) * ldq + static_cast<int64_t>(h) * HD;
    kg = k_cache + s * max_ctx * ldkv + static_cast<int64_t>(h / rep) * HD;
    vg = v_cache + s * max_ctx * ldkv + static_cast<int64_t>(h / rep) * HD;
  }
};

// RoPE of the query rows as they are loaded (RopeQ, attention.cuh): granule g of a row (8
// consecutive elements of one head, 16 bytes) is rotated with its partner granule g ^ (HD/16) --
// HF's pairs (i, i + hd/2) -- which the caller fetches by a shuffle (both lie in one warp); cs: the
// 8 (cos, sin) pairs of T of this granule's frequencies at the row's position (launch_rope_table).
// The arithmetic of rope_kv, so the rotated row is bit-identical to the one rope_kv writes:
// x' = T(T(x c) + T(-y s)) in the first half (x = x_i, y = x_{i+hd/2}), T(T(x c) + T(y s)) in the
// second (x = x_{i+hd/2}, y = x_i).
// (T(a), T(b)) packed into one word by one conversion instruction (cvt.rn.{bf16,f16}x2.f32), and
// back to fp32.
template <class T>
__device__ __forceinline__ uint32_t rope_pack2(float a, float b) {
  uint32_t w;
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 h = __floats2half2_rn(a, b);
    w = *reinterpret_cast<const uint32_t*>(&h);
  } else {
    const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    w = *reinterpret_cast<const uint32_t*>(&h);
  }
  return w;
}
template <class T>
__device__ __forceinline__ float2 rope_unpack2(uint32_t w) {
  if constexpr (std::is_same_v<T, __half>)
    return __half22float2(*reinterpret_cast<const __half2*>(&w));
  else
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&w));
}
// One 16-byte granule: 8 elements, every rounding to T two per conversion.
template <class T>
__device__ __forceinline__ uint4 rope8(uint4 mine, uint4 other, bool first, uint4 cs_lo,
                                       uint4 cs_hi) {
  const uint32_t x[4] = {mine.x, mine.y, mine.z, mine.w},
                 y[4] = {other.x, other.y, other.z, other.w};
  const uint32_t cs[8] = {cs_lo.x, cs_lo.y, cs_lo.z, cs_lo.w, cs_hi.x, cs_hi.y, cs_hi.z, cs_hi.w};
  const float sg = first ? -1.0f : 1.0f;
  uint32_t o[4];
#pragma unroll
  for (int w = 0; w < 4; ++w) {  // elements 2w, 2w + 1
    const float2 xv = rope_unpack2<T>(x[w]), yv = rope_unpack2<T>(y[w]);
    const float2 p0 = rope_unpack2<T>(cs[2 * w]), p1 = rope_unpack2<T>(cs[2 * w + 1]);  // (c, s)
    const float2 a = rope_unpack2<T>(rope_pack2<T>(__fmul_rn(xv.x, p0.x), __fmul_rn(xv.y, p1.x)));
    const float2 b =
        rope_unpack2<T>(rope_pack2<T>(__fmul_rn(sg * yv.x, p0.y), __fmul_rn(sg * yv.y, p1.y)));
    o[w] = rope_pack2<T>(__fadd_rn(a.x, b.x), __fadd_rn(a.y, b.y));
  }
  return make_uint4(o[0], o[1], o[2], o[3]);
}
__device__ __forceinline__ uint4 shfl_xor16(uint4 v, int mask) {
  v.x = __shfl_xor_sync(0xffffffffu, v.x, mask);
  v.y = __shfl_xor_sync(0xffffffffu, v.y, mask);
  v.z = __shfl_xor_sync(0xffffffffu, v.z, mask);
  v.w = __shfl_xor_sync(0xffffffffu, v.w, mask);
  return v;
}

// The query tile's loader with RoPE, shared by both kernels: this thread's granule g (of HD / 8
// per row) of rows r0 + k * rstep, k < STEPS, each loaded (zero for rows >= valid) with its 8
// (cos, sin) pairs at position p0 + row, then rotated with the partner granule g ^ (HD / 16) of the
// same row (another lane of the warp, fetched by a shuffle: every lane runs every step) and stored
// at dst(k) (a shared-memory address). Loads go out in batches of up to 8 steps before the
// rotations.
template <class T, int HD, int STEPS, class DstFn>
__device__ __forceinline__ void rope_q_rows(const T* src, int64_t ld, int valid, int g, int r0,
                                            int rstep, const T* cs, int64_t p0, DstFn dst) {
  constexpr int kHalfG = HD / 16, kBatch = STEPS < 8 ? STEPS : 8;
  static_assert(STEPS % kBatch == 0, "whole batches");
  const uint4 zero = make_uint4(0, 0, 0, 0);
#pragma unroll
  for (int k0 = 0; k0 < STEPS; k0 += kBatch) {
    uint4 v[kBatch], c0[kBatch], c1[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int r = r0 + (k0 + b) * rstep;
      const bool ok = r < valid;
      const uint4* c =
          reinterpret_cast<const uint4*>(cs + ((p0 + r) * (HD / 2) + (g % kHalfG) * 8) * 2);
      v[b] = ok ? __ldg(reinterpret_cast<const uint4*>(src + r * ld + g * 8)) : zero;
      c0[b] = ok ? __ldg(c) : zero;
      c1[b] = ok ? __ldg(c + 1) : zero;
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const uint4 other = shfl_xor16(v[b], kHalfG);
      const bool ok = r0 + (k0 + b) * rstep < valid;
      *reinterpret_cast<uint4*>(dst(k0 + b)) =
          ok ? rope8<T>(v[b], other, g < kHalfG, c0[b], c1[b]) : zero;
    }
  }
}

template <class T>
using PrefillKernelFn = void (*)(const T*, int64_t, const T*, const T*, int64_t, int, int64_t, int,
                                 int, T*, int64_t, float, const T*);

template <auto Kernel, class T, int HD>
Status launch_prefill_kernel(size_t smem, int rows_per_cta, int threads, const void* q, int64_t ldq,
                             const void* k_cache, const void* v_cache, int64_t max_ctx, int64_t S,
                             int64_t L, int64_t pos0, int64_t H, int64_t KV, void* out, int64_t ldo,
                             const void* rope_cs, cudaStream_t stream) {
  static_assert(std::is_same_v<decltype(Kernel), PrefillKernelFn<T>>, "prefill kernel signature");
  static bool configured = false;  // the opt-in size, set once for this kernel
  if (!configured) {
    SS_CUDA_TRY(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     static_cast<int>(smem)));
    configured = true;
  }
  const dim3 grid(static_cast<unsigned>(H),
                  static_cast<unsigned>((L + rows_per_cta - 1) / rows_per_cta),
                  static_cast<unsigned>(S));
  const float scale_log2 = static_cast<float>(1.0 / std::sqrt(static_cast<double>(HD)) * M_LOG2E);
  Kernel<<<grid, threads, smem, stream>>>(
      static_cast<const T*>(q), ldq, static_cast<const T*>(k_cache), static_cast<const T*>(v_cache),
      max_ctx, static_cast<int>(L), pos0, static_cast<int>(H / KV), static_cast<int>(KV),
      static_cast<T*>(out), ldo, scale_log2, static_cast<const T*>(rope_cs));
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

}  // namespace slidesparse::cuda::kernels
