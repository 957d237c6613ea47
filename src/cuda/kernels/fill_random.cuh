// Deterministic random fill of device buffers for benchmarks and tests (counter-based hash, so
// no state and no host round trip): values uniform in [-1, 1) in BF16/F16/F32.
#pragma once

#include <cuda_runtime.h>

#include "slidesparse/dtype.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

Status launch_fill_random(DType t, void* out, int64_t count, uint64_t seed, cudaStream_t stream);

}  // namespace slidesparse::cuda::kernels
