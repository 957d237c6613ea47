// The Hopper (sm_90a, wgmma) prefill attention kernel behind launch_attention_prefill
// (attention.cuh): same contract; the caller has validated the arguments. overlap: the
// overlapped schedule (PrefillKernel::kWgmmaOverlap), else the serial one (kWgmma).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "slidesparse/dtype.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

// True where the kernel runs: an sm_90 device (the sm_90a build) and head dim 64 or 128.
bool attention_prefill_sm90_supports(int sm, int64_t hd);

Status launch_attention_prefill_sm90(DType t, const void* q, int64_t ldq, const void* k_cache,
                                     const void* v_cache, int64_t max_ctx, int64_t S, int64_t L,
                                     int64_t pos0, int64_t H, int64_t KV, int64_t hd, void* out,
                                     int64_t ldo, bool overlap, cudaStream_t stream);

}  // namespace slidesparse::cuda::kernels
