// Row-wise argmax of logits [M, V] (row stride ld) in BF16, F16 or F32: out[m] = the lowest index
// of the row's largest value (int32). NaN never wins; a row of -inf gives 0 (its first index); a
// row with no non-NaN value gives 0. One CTA per row. Decode's greedy pick, on the device.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "slidesparse/dtype.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda::kernels {

Status launch_argmax(DType t, const void* logits, int64_t ld, int64_t M, int64_t V, int32_t* out,
                     cudaStream_t stream);

}  // namespace slidesparse::cuda::kernels
