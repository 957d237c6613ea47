// CUTLASS sm90a dense int8 GEMMs (int32 accumulate), the fused-epilogue baseline of the sparse
// ones. 0: pingpong 128x128x128 cluster 2x1; 1: cooperative 128x256x128 cluster 2x1.
#include "cuda/cutlass/factories.h"
#include "cuda/cutlass/gemm_cutlass_impl.cuh"

namespace slidesparse::cuda {

using DenseI8_0 =
    cutlass_impl::Cfg<int8_t, false, 128, 128, 128, 2, cutlass_impl::Sched::kPingpong>;
using DenseI8_1 =
    cutlass_impl::Cfg<int8_t, false, 128, 256, 128, 2, cutlass_impl::Sched::kCooperative>;

Expected<std::unique_ptr<GemmCutlass>> cutlass_dense_i8(int64_t N, int64_t K_pad, const void* w) {
  return cutlass_impl::CutlassGemmImpl<DenseI8_0, DenseI8_1>::create(DType::kI8, N, K_pad, K_pad, w,
                                                                     nullptr);
}

}  // namespace slidesparse::cuda
