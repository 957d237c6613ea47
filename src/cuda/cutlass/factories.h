// Factories of the CUTLASS kernel TUs (one .cu per dtype x kind, see gemm_cutlass_impl.cuh);
// called by gemm_cutlass.cpp after argument checks. Built only with -DSLIDESPARSE_CUTLASS=ON.
#pragma once

#include <cuda_runtime.h>

#include <memory>

#include "cuda/gemm_cutlass.h"

namespace slidesparse::cuda {

Expected<std::unique_ptr<GemmCutlass>> cutlass_sparse_i8(int64_t N, int64_t K_pad, int64_t ld_w,
                                                         const void* w, cudaStream_t stream);
Expected<std::unique_ptr<GemmCutlass>> cutlass_sparse_f8(int64_t N, int64_t K_pad, int64_t ld_w,
                                                         const void* w, cudaStream_t stream);
Expected<std::unique_ptr<GemmCutlass>> cutlass_dense_i8(int64_t N, int64_t K_pad, const void* w);
Expected<std::unique_ptr<GemmCutlass>> cutlass_dense_f8(int64_t N, int64_t K_pad, const void* w);

}  // namespace slidesparse::cuda
