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
template <class T>
__device__ __forceinline__ float rope_f32(T v) {
  if constexpr (std::is_same_v<T, __half>)
    return __half2float(v);
  else
    return __bfloat162float(v);
}
template <class T>
__device__ __forceinline__ T rope_t(float v) {
  if constexpr (std::is_same_v<T, __half>)
    return __float2half_rn(v);
  else
    return __float2bfloat16_rn(v);
}
template <class T>
__device__ __forceinline__ uint4 rope8(uint4 mine, uint4 other, bool first, uint4 cs_lo,
                                       uint4 cs_hi) {
  const T* x = reinterpret_cast<const T*>(&mine);
  const T* y = reinterpret_cast<const T*>(&other);
  const T* lo = reinterpret_cast<const T*>(&cs_lo);
  const T* hi = reinterpret_cast<const T*>(&cs_hi);
  uint4 out;
  T* o = reinterpret_cast<T*>(&out);
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const float c = rope_f32(e < 4 ? lo[2 * e] : hi[2 * e - 8]);
    const float s = rope_f32(e < 4 ? lo[2 * e + 1] : hi[2 * e - 7]);
    const float yv = rope_f32(y[e]);
    const float a = rope_f32(rope_t<T>(__fmul_rn(rope_f32(x[e]), c)));
    const float b = rope_f32(rope_t<T>(__fmul_rn(first ? -yv : yv, s)));
    o[e] = rope_t<T>(__fadd_rn(a, b));
  }
  return out;
}
__device__ __forceinline__ uint4 shfl_xor16(uint4 v, int mask) {
  v.x = __shfl_xor_sync(0xffffffffu, v.x, mask);
  v.y = __shfl_xor_sync(0xffffffffu, v.y, mask);
  v.z = __shfl_xor_sync(0xffffffffu, v.z, mask);
  v.w = __shfl_xor_sync(0xffffffffu, v.w, mask);
  return v;
}

// Loads one row granule of q (zero for rows >= valid) and rotates it: the part of rope8 every
// loader shares. p: the row's position, g: its granule, HD: head dim.
template <class T, int HD>
__device__ __forceinline__ uint4 load_q_rope(const T* src, bool ok, int g, const T* cs, int64_t p) {
  constexpr int kHalfG = HD / 16;  // granules per half head
  const uint4 zero = make_uint4(0, 0, 0, 0);
  const uint4 v = ok ? __ldg(reinterpret_cast<const uint4*>(src)) : zero;
  const uint4* c = reinterpret_cast<const uint4*>(cs + (p * (HD / 2) + (g % kHalfG) * 8) * 2);
  const uint4 c0 = ok ? __ldg(c) : zero, c1 = ok ? __ldg(c + 1) : zero;
  const uint4 other = shfl_xor16(v, kHalfG);  // every lane: the shuffle needs the whole warp
  return ok ? rope8<T>(v, other, g < kHalfG, c0, c1) : zero;
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
