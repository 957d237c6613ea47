// The launch both prefill attention kernels share (attention_prefill.cu,
// attention_prefill_sm90.cu): the dynamic shared memory opt-in once per kernel, the grid (q head,
// query block, sequence) and the softmax scale in the log2 domain. Kernel: a __global__ function
// with the signature below.
#pragma once

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

template <class T>
using PrefillKernelFn = void (*)(const T*, int64_t, const T*, const T*, int64_t, int, int64_t, int,
                                 int, T*, int64_t, float);

template <auto Kernel, class T, int HD>
Status launch_prefill_kernel(size_t smem, int rows_per_cta, int threads, const void* q, int64_t ldq,
                             const void* k_cache, const void* v_cache, int64_t max_ctx, int64_t S,
                             int64_t L, int64_t pos0, int64_t H, int64_t KV, void* out, int64_t ldo,
                             cudaStream_t stream) {
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
      static_cast<T*>(out), ldo, scale_log2);
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

}  // namespace slidesparse::cuda::kernels
