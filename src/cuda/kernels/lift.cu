// Lift only: each thread writes 8 lifted 16-bit values (one 16-byte store); the sources of one
// window are 4 consecutive elements, read through the read-only cache.
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/kernels/lift.cuh"
#include "cuda/kernels/quant_common.cuh"

namespace slidesparse::cuda::kernels {
namespace {

__global__ void lift_kernel(const uint16_t* __restrict__ x, int64_t M, int64_t K, int m, int L,
                            int64_t blocks, uint16_t* __restrict__ out, int64_t M_pad,
                            int64_t K_out) {
  const int64_t chunks_per_row = K_out / 8;
  const int64_t total = M_pad * chunks_per_row;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t r = i / chunks_per_row;
    int64_t c = (i - r * chunks_per_row) * 8;
    alignas(16) uint16_t v[8];
    if (r >= M) {
#pragma unroll
      for (int e = 0; e < 8; ++e) v[e] = 0;
    } else {
      const uint16_t* xr = x + r * K;
      int64_t b = c / L;
      int rr = static_cast<int>(c - b * L);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        int64_t src = b * m + 2 * (rr >> 2) + (rr & 3);
        v[e] = (b < blocks && src < K) ? __ldg(xr + src) : uint16_t{0};
        if (++rr == L) {
          rr = 0;
          ++b;
        }
      }
    }
    *reinterpret_cast<uint4*>(out + r * K_out + c) = *reinterpret_cast<const uint4*>(v);
  }
}

}  // namespace

Status launch_lift(DType t, Pattern p, const void* x, int64_t M, int64_t K, void* out,
                   int64_t M_pad, int64_t K_out, cudaStream_t stream) {
  if (dtype_size(t) != 2)
    return unsupported(std::string("lift: dtype ") + dtype_name(t) +
                       " not supported (expected a 16-bit type: BF16 or F16)");
  if (M < 0 || K <= 0 || M_pad < M)
    return invalid_argument("lift: bad sizes M=" + std::to_string(M) + " K=" + std::to_string(K));
  if (K_out < p.k_lifted(K) || K_out % 8 != 0)
    return invalid_argument("lift: K_out=" + std::to_string(K_out) +
                            " must be a multiple of 8 and >= " + std::to_string(p.k_lifted(K)));
  if (reinterpret_cast<uintptr_t>(out) % 16 != 0)
    return invalid_argument("lift: output pointer must be 16-byte aligned");
  int64_t total = M_pad * (K_out / 8);
  if (total == 0) return Status::Ok();
  int threads = 256;
  int64_t grid = (total + threads - 1) / threads;
  if (grid > 65536 * 8) grid = 65536 * 8;
  lift_kernel<<<static_cast<unsigned>(grid), threads, 0, stream>>>(
      static_cast<const uint16_t*>(x), M, K, p.m, p.lifted_block(), p.blocks(K),
      static_cast<uint16_t*>(out), M_pad, K_out);
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

}  // namespace slidesparse::cuda::kernels
