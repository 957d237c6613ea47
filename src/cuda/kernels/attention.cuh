// Causal GQA attention over the KV cache [slots, max_ctx, KV*hd] (T = BF16/F16), softmax in fp32
// with scale 1/sqrt(hd); query head h reads kv head h / (H / KV). hd in {16, 32, 64, 128}.
//
// Prefill (flash-style, tiled, tensor cores): S sequences of L new queries each; sequence s uses
// cache slot s and its query rows are s*L .. s*L+L-1 of q [S*L, ldq] (head h at column h*hd);
// the query at row s*L+i sits at position pos0+i and attends keys 0 .. pos0+i of slot s (the cache
// already holds them). out: [S*L, ldo], head h at column h*hd. kernel: which implementation
// (same arithmetic, same tolerances): kAuto takes the wgmma kernel on sm_90 for hd 64 / 128 when
// pos0 + L >= 1024 (with its overlapped schedule, kWgmmaOverlap, from 4096), else the mma.sync
// kernel with 128 query rows per CTA where the device's shared memory per block allows it, else
// 64; the others force one (kWgmma / kWgmmaOverlap on another GPU or head dim: kUnsupported).
//
// Decode: one query per sequence b = 0..B-1 (row b of q), cache slot b, attending keys
// 0 .. kv_len[b]-1 (device array). The launch grid depends only on B and max_ctx, never on
// kv_len, so the launch can be captured in a CUDA graph and replayed as the context grows.
// kv_len[b] is clamped to [0, max_ctx]; 0 gives a zero output row.
//
// Both: q, caches and out 16-byte aligned, ldq a multiple of 8 (ldo too for prefill); cache rows
// past the attended keys are never read (they may hold anything, NaN included). Implementation:
// attention_prefill.cu (+ attention_prefill_sm90.cu), attention_decode.cu; notes and measured
// speed: docs/attention.md.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "slidesparse/dtype.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

enum class PrefillKernel { kAuto, kWgmma, kWgmmaOverlap, kMma128, kMma64 };
// The Hopper kernel, either schedule.
inline bool prefill_kernel_is_wgmma(PrefillKernel k) {
  return k == PrefillKernel::kWgmma || k == PrefillKernel::kWgmmaOverlap;
}
const char* prefill_kernel_name(PrefillKernel k);
// "auto" | "wgmma" | "wgmma_overlap" | "mma128" | "mma64" (the engine reads
// SLIDESPARSE_PREFILL_ATTENTION with it).
Status prefill_kernel_parse(const char* name, PrefillKernel* out);

Status launch_attention_prefill(DType t, const void* q, int64_t ldq, const void* k_cache,
                                const void* v_cache, int64_t max_ctx, int64_t S, int64_t L,
                                int64_t pos0, int64_t H, int64_t KV, int64_t hd, void* out,
                                int64_t ldo, cudaStream_t stream,
                                PrefillKernel kernel = PrefillKernel::kAuto);

// Scratch the decode launch needs (split-KV partial results), 0 if none; the caller allocates it
// once for the largest B and max_ctx it will use.
size_t attention_decode_workspace_bytes(int64_t B, int64_t H, int64_t hd, int64_t max_ctx);
Status launch_attention_decode(DType t, const void* q, int64_t ldq, const void* k_cache,
                               const void* v_cache, int64_t max_ctx, const int32_t* kv_len,
                               int64_t B, int64_t H, int64_t KV, int64_t hd, void* out, int64_t ldo,
                               void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace slidesparse::cuda::kernels
