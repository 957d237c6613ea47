// Quantize only: one pass over X, per-token scale, 16-byte loads and stores.
#include "cuda/kernels/quant.cuh"
#include "cuda/kernels/quant_common.cuh"

namespace slidesparse::cuda::kernels {

Status launch_quantize(DType in, QuantMode q, const void* x, int64_t M, int64_t K, void* out,
                       int64_t M_pad, int64_t K_out, float* scales, cudaStream_t stream) {
  return launch_quant_rows<false>("quantize", in, q, Pattern{}, x, M, K, out, M_pad, K_out, scales,
                                  stream);
}

}  // namespace slidesparse::cuda::kernels
