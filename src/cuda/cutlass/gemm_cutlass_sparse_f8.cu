// CUTLASS sm90a 2:4 sparse fp8 e4m3 GEMMs (fp32 accumulate, FastAccum: no periodic promotion):
// the slided weight compressed by CUTLASS's compressor x dense activations. Tiles in CUTLASS
// coordinates (channels x tokens x logical K). 0: cooperative 128x128x256 cluster 1x1;
// 1: cooperative 128x256x128 cluster 2x1; 2: pingpong 128x128x256 cluster 2x1; 3: cooperative
// 256x128x256 cluster 2x1.
#include "cuda/cutlass/factories.h"
#include "cuda/cutlass/gemm_cutlass_impl.cuh"

namespace slidesparse::cuda {

using SparseF8_0 = cutlass_impl::Cfg<cutlass::float_e4m3_t, true, 128, 128, 256, 1,
                                     cutlass_impl::Sched::kCooperative>;
using SparseF8_1 = cutlass_impl::Cfg<cutlass::float_e4m3_t, true, 128, 256, 128, 2,
                                     cutlass_impl::Sched::kCooperative>;
using SparseF8_2 = cutlass_impl::Cfg<cutlass::float_e4m3_t, true, 128, 128, 256, 2,
                                     cutlass_impl::Sched::kPingpong>;
using SparseF8_3 = cutlass_impl::Cfg<cutlass::float_e4m3_t, true, 256, 128, 256, 2,
                                     cutlass_impl::Sched::kCooperative>;

Expected<std::unique_ptr<GemmCutlass>> cutlass_sparse_f8(int64_t N, int64_t K_pad, int64_t ld_w,
                                                         const void* w, cudaStream_t stream) {
  return cutlass_impl::CutlassGemmImpl<SparseF8_0, SparseF8_1, SparseF8_2, SparseF8_3>::create(
      DType::kF8E4M3, N, K_pad, ld_w, w, stream);
}

}  // namespace slidesparse::cuda
