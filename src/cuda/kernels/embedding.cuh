// Token embedding gather: out [M, C] = table [ids[m], :] in the model dtype T (BF16 or F16).
// ids are validated on the host (0 <= id < vocab); an out-of-range id writes a zero row.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "slidesparse/dtype.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

Status launch_embedding(DType t, const void* table, int64_t vocab, int64_t C, const int32_t* ids,
                        int64_t M, void* out, cudaStream_t stream);

}  // namespace slidesparse::cuda::kernels
