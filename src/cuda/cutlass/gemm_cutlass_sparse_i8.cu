// CUTLASS sm90a 2:4 sparse int8 GEMMs (int32 accumulate): the slided weight compressed by
// CUTLASS's compressor x dense activations. Tiles in CUTLASS coordinates (channels x tokens x
// logical K). 0: pingpong 128x128x128 cluster 2x1; 1: cooperative 128x256x128 cluster 2x1;
// 2: pingpong 128x128x256 cluster 2x1; 3: cooperative 256x128x256 cluster 2x1 (tile K 256: 128
// bytes of compressed values per row and k-block; cooperative 128x256x256, tried, never won).
#include "cuda/cutlass/factories.h"
#include "cuda/cutlass/gemm_cutlass_impl.cuh"

namespace slidesparse::cuda {

using SparseI8_0 =
    cutlass_impl::Cfg<int8_t, true, 128, 128, 128, 2, cutlass_impl::Sched::kPingpong>;
using SparseI8_1 =
    cutlass_impl::Cfg<int8_t, true, 128, 256, 128, 2, cutlass_impl::Sched::kCooperative>;
using SparseI8_2 =
    cutlass_impl::Cfg<int8_t, true, 128, 128, 256, 2, cutlass_impl::Sched::kPingpong>;
using SparseI8_3 =
    cutlass_impl::Cfg<int8_t, true, 256, 128, 256, 2, cutlass_impl::Sched::kCooperative>;

Expected<std::unique_ptr<GemmCutlass>> cutlass_sparse_i8(int64_t N, int64_t K_pad, int64_t ld_w,
                                                         const void* w, cudaStream_t stream) {
  return cutlass_impl::CutlassGemmImpl<SparseI8_0, SparseI8_1, SparseI8_2, SparseI8_3>::create(
      DType::kI8, N, K_pad, ld_w, w, stream);
}

}  // namespace slidesparse::cuda
