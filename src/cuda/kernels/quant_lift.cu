// Fused quantize + lift: the row is read once into shared memory (16-byte loads), reduced to its
// absmax, then the lifted row is written 16 codes per store.
#include "cuda/kernels/quant_common.cuh"
#include "cuda/kernels/quant_lift.cuh"

namespace slidesparse::cuda::kernels {

Status launch_quant_lift(DType in, QuantMode q, Pattern p, const void* x, int64_t M, int64_t K,
                         void* out, int64_t M_pad, int64_t K_out, float* scales,
                         cudaStream_t stream) {
  // 2:4's lift is the identity (one window per block): the quantize-only kernel writes the same
  // codes (zero past K) without the shared codes row and the gather.
  if (p.n == 2 && p.m == 4)
    return launch_quant_rows<false>("quant_lift", in, q, p, x, M, K, out, M_pad, K_out, scales,
                                    stream);
  return launch_quant_rows<true>("quant_lift", in, q, p, x, M, K, out, M_pad, K_out, scales,
                                 stream);
}

}  // namespace slidesparse::cuda::kernels
