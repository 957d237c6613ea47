// CUTLASS sm90a dense fp8 e4m3 GEMMs (fp32 accumulate, FastAccum), the fused-epilogue baseline of
// the sparse ones. 0: pingpong 128x128x128 cluster 2x1; 1: cooperative 128x256x128 cluster 2x1.
#include "cuda/cutlass/factories.h"
#include "cuda/cutlass/gemm_cutlass_impl.cuh"

namespace slidesparse::cuda {

using DenseF8_0 = cutlass_impl::Cfg<cutlass::float_e4m3_t, false, 128, 128, 128, 2,
                                    cutlass_impl::Sched::kPingpong>;
using DenseF8_1 = cutlass_impl::Cfg<cutlass::float_e4m3_t, false, 128, 256, 128, 2,
                                    cutlass_impl::Sched::kCooperative>;

Expected<std::unique_ptr<GemmCutlass>> cutlass_dense_f8(int64_t N, int64_t K_pad, const void* w) {
  return cutlass_impl::CutlassGemmImpl<DenseF8_0, DenseF8_1>::create(DType::kF8E4M3, N, K_pad,
                                                                     K_pad, w, nullptr);
}

}  // namespace slidesparse::cuda
