// CUTLASS sm90a 2:4 sparse int8 GEMM (int32 accumulate): the slided weight compressed by
// CUTLASS's compressor x dense activations. Pingpong, tile 128x128x128 (logical K), cluster 2x1.
#include "cuda/cutlass/factories.h"
#include "cuda/cutlass/gemm_cutlass_impl.cuh"

namespace slidesparse::cuda {

using SparseI8 = cutlass_impl::Config<int8_t, true, cute::Shape<cute::_128, cute::_128, cute::_128>,
                                      cute::Shape<cute::_2, cute::_1, cute::_1>,
                                      cutlass::gemm::KernelTmaWarpSpecializedPingpong,
                                      cutlass::epilogue::TmaWarpSpecialized>;

Expected<std::unique_ptr<GemmCutlass>> cutlass_sparse_i8(int64_t N, int64_t K_pad, int64_t ld_w,
                                                         const void* w, cudaStream_t stream) {
  return cutlass_impl::CutlassGemmImpl<SparseI8>::create(DType::kI8, N, K_pad, ld_w, w, stream);
}

}  // namespace slidesparse::cuda
