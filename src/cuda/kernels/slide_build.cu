// Slided operand build: one thread per (row, block) rebuilds the block from mask + values and
// places its nonzeros into the 2:4 windows.
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/kernels/slide_build.cuh"

namespace slidesparse::cuda::kernels {
namespace {

template <class T>
__global__ void slide_build_kernel(const T* __restrict__ values, const uint16_t* __restrict__ masks,
                                   int64_t N, int64_t K, int n, int m, int64_t blocks, T zero_mask,
                                   T* __restrict__ out, int64_t K_out) {
  const int64_t total = N * blocks;
  const int L = 4 * (m / 2 - 1);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t r = i / blocks;
    int64_t b = i - r * blocks;
    T blk[16];
    for (int k = 0; k < m; ++k) blk[k] = 0;
    uint32_t mask = masks[r * blocks + b];
    const T* v = values + r * blocks * n + b * n;
    int idx = 0;
    for (int k = 0; k < m && idx < n; ++k)
      if (mask >> k & 1u) blk[k] = v[idx++];
    uint32_t placed = 0;
    T* o = out + r * K_out + b * L;
    for (int j = 0; j < m / 2 - 1; ++j) {
      int cnt = 0;
      for (int t = 0; t < 4; ++t) {
        int pos = 2 * j + t;
        T val = blk[pos];
        bool take = (val & zero_mask) != 0 && !(placed >> pos & 1u) && cnt < 2;
        if (take) {
          placed |= 1u << pos;
          ++cnt;
        }
        o[4 * j + t] = take ? val : T{0};
      }
    }
  }
}

template <class T>
Status launch_t(Pattern p, const void* values, const uint16_t* masks, int64_t N, int64_t K,
                T zero_mask, void* out, int64_t N_pad, int64_t K_out, cudaStream_t stream) {
  SS_CUDA_TRY(cudaMemsetAsync(out, 0, static_cast<size_t>(N_pad * K_out) * sizeof(T), stream));
  int64_t total = N * p.blocks(K);
  if (total == 0) return Status::Ok();
  int threads = 256;
  int64_t grid = (total + threads - 1) / threads;
  if (grid > 65536 * 8) grid = 65536 * 8;
  slide_build_kernel<T><<<static_cast<unsigned>(grid), threads, 0, stream>>>(
      static_cast<const T*>(values), masks, N, K, p.n, p.m, p.blocks(K), zero_mask,
      static_cast<T*>(out), K_out);
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

}  // namespace

Status launch_slide_build(DType t, Pattern p, const void* values, const uint16_t* masks, int64_t N,
                          int64_t K, void* out, int64_t N_pad, int64_t K_out, cudaStream_t stream) {
  if (N < 0 || K <= 0 || N_pad < N || K_out < p.k_lifted(K))
    return invalid_argument("slide_build: bad sizes N=" + std::to_string(N) +
                            " K=" + std::to_string(K) + " N_pad=" + std::to_string(N_pad) +
                            " K_out=" + std::to_string(K_out));
  if (p.n > p.m - 2 || p.m > 16)
    return invalid_argument("slide_build: pattern " + p.str() + " cannot slide onto 2:4");
  switch (t) {
    case DType::kBF16:
    case DType::kF16:
      return launch_t<uint16_t>(p, values, masks, N, K, 0x7fff, out, N_pad, K_out, stream);
    case DType::kF8E4M3:
      return launch_t<uint8_t>(p, values, masks, N, K, 0x7f, out, N_pad, K_out, stream);
    case DType::kI8:
      return launch_t<uint8_t>(p, values, masks, N, K, 0xff, out, N_pad, K_out, stream);
    default:
      return unsupported(std::string("slide_build: value dtype ") + dtype_name(t) +
                         " not supported (expected BF16, F16, I8 or F8_E4M3)");
  }
}

}  // namespace slidesparse::cuda::kernels
