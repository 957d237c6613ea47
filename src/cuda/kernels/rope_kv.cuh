// Rotary embedding (HF layout: pairs (i, i + hd/2)) of the fused qkv rows, and the KV-cache write.
//   qkv [M, ld] T (BF16/F16): row m holds q heads (H*hd), then k heads (KV*hd), then v (KV*hd).
//   pos [M] int32: position of row m; slot [M] int32: its sequence's cache slot.
//   cos/sin(i) = T(cos/sin(pos * inv_freq[i])): the angle in fp32 (HF), its cos/sin evaluated in
//   fp64 and rounded to fp32 (the correctly rounded fp32 value: host and device agree; HF's fp32
//   cosf may differ by an fp32 ulp before the rounding to T), then rounded to T (HF);
//   rotated x' = T(T(x * cos) + T(rot(x) * sin)), rot(x) = (-x[i + hd/2], x[i]) per pair.
//   q heads are rotated in place in qkv; rotated k and the unchanged v of row m are written to
//   k_cache / v_cache [slots, max_ctx, KV*hd] at [slot[m], pos[m], :].
// pos and slot are device arrays (graph capture: values change between replays, pointers do not).
// A row with pos outside [0, max_ctx) or a negative slot gets its q rotated and writes no cache.
// hd even, <= 512; H % KV == 0; ld >= (H + 2 KV) hd.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "slidesparse/dtype.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

Status launch_rope_kv(DType t, void* qkv, int64_t ld, int64_t M, int64_t H, int64_t KV, int64_t hd,
                      const int32_t* pos, const int32_t* slot, const float* inv_freq, void* k_cache,
                      void* v_cache, int64_t max_ctx, cudaStream_t stream);

}  // namespace slidesparse::cuda::kernels
