// Rotary embedding (HF layout: pairs (i, i + hd/2)) of the fused qkv rows, and the KV-cache write.
//   qkv [M, ld] T (BF16/F16): row m holds q heads (H*hd), then k heads (KV*hd), then v (KV*hd).
//   pos [M] int32: position of row m; slot [M] int32: its sequence's cache slot.
//   cos/sin(i) = T(cos/sin(pos * inv_freq[i])) evaluated in fp32 then rounded to T (HF);
//   rotated x' = T(T(x * cos) + T(rot(x) * sin)), rot(x) = (-x[i + hd/2], x[i]) per pair.
//   q heads are rotated in place in qkv; rotated k and the unchanged v of row m are written to
//   k_cache / v_cache [slots, max_ctx, KV*hd] at [slot[m], pos[m], :].
// pos and slot are device arrays (graph capture: values change between replays, pointers do not).
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
