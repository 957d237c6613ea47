// Counter-based random fill (splitmix64 of the index): deterministic for a given seed.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>

#include "cuda/cuda_check.h"
#include "cuda/kernels/fill_random.cuh"

namespace slidesparse::cuda::kernels {
namespace {

__device__ __forceinline__ float rand_unit(uint64_t i, uint64_t seed) {
  uint64_t z = i + seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

template <class T>
__global__ void fill_kernel(T* out, int64_t count, uint64_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v = rand_unit(static_cast<uint64_t>(i), seed);
    if constexpr (sizeof(T) == 4) {
      out[i] = v;
    } else {
      out[i] = T(v);
    }
  }
}

template <class T>
Status launch_t(void* out, int64_t count, uint64_t seed, cudaStream_t stream) {
  int64_t grid = (count + 255) / 256;
  if (grid > 65536 * 4) grid = 65536 * 4;
  if (grid == 0) return Status::Ok();
  fill_kernel<T>
      <<<static_cast<unsigned>(grid), 256, 0, stream>>>(static_cast<T*>(out), count, seed);
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

}  // namespace

Status launch_fill_random(DType t, void* out, int64_t count, uint64_t seed, cudaStream_t stream) {
  switch (t) {
    case DType::kBF16:
      return launch_t<__nv_bfloat16>(out, count, seed, stream);
    case DType::kF16:
      return launch_t<__half>(out, count, seed, stream);
    case DType::kF32:
      return launch_t<float>(out, count, seed, stream);
    default:
      return unsupported(std::string("fill_random: dtype ") + dtype_name(t) + " not supported");
  }
}

}  // namespace slidesparse::cuda::kernels
