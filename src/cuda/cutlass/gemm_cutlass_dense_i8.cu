// CUTLASS sm90a dense int8 GEMM (int32 accumulate), the fused-epilogue baseline of the sparse
// one. Pingpong, tile 128x128x128, cluster 2x1.
#include "cuda/cutlass/factories.h"
#include "cuda/cutlass/gemm_cutlass_impl.cuh"

namespace slidesparse::cuda {

using DenseI8 = cutlass_impl::Config<int8_t, false, cute::Shape<cute::_128, cute::_128, cute::_128>,
                                     cute::Shape<cute::_2, cute::_1, cute::_1>,
                                     cutlass::gemm::KernelTmaWarpSpecializedPingpong,
                                     cutlass::epilogue::TmaWarpSpecialized>;

Expected<std::unique_ptr<GemmCutlass>> cutlass_dense_i8(int64_t N, int64_t K_pad, const void* w) {
  return cutlass_impl::CutlassGemmImpl<DenseI8>::create(DType::kI8, N, K_pad, K_pad, w, nullptr);
}

}  // namespace slidesparse::cuda
