// Token embedding gather: grid-stride over 16-byte chunks of the output (8 elements) when C and
// the pointers allow it, else over elements; an out-of-range id yields a zero row.
#include <algorithm>
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/kernels/embedding.cuh"

namespace slidesparse::cuda::kernels {
namespace {

template <class V>  // V: uint4 (8 x 16-bit) or uint16_t
__global__ void embedding_kernel(const V* __restrict__ table, int64_t vocab, int64_t per_row,
                                 const int32_t* __restrict__ ids, int64_t M, V* __restrict__ out) {
  const int64_t total = M * per_row;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / per_row, c = i - r * per_row;
    const int64_t id = ids[r];
    V v{};
    if (id >= 0 && id < vocab) v = __ldg(table + id * per_row + c);
    out[i] = v;
  }
}

}  // namespace

Status launch_embedding(DType t, const void* table, int64_t vocab, int64_t C, const int32_t* ids,
                        int64_t M, void* out, cudaStream_t stream) {
  if (t != DType::kBF16 && t != DType::kF16)
    return unsupported(std::string("embedding: dtype ") + dtype_name(t) +
                       " not supported (expected BF16 or F16)");
  if (M < 0 || C <= 0 || vocab <= 0)
    return invalid_argument("embedding: bad sizes M=" + std::to_string(M) +
                            " C=" + std::to_string(C) + " vocab=" + std::to_string(vocab));
  if (M == 0) return Status::Ok();
  if (!table || !ids || !out)
    return invalid_argument("embedding: table, ids and out must not be null");
  const bool vec = C % 8 == 0 && (reinterpret_cast<uintptr_t>(table) & 15) == 0 &&
                   (reinterpret_cast<uintptr_t>(out) & 15) == 0;
  const int64_t per_row = vec ? C / 8 : C, total = M * per_row;
  const int threads = 256;
  const int64_t grid = std::min<int64_t>((total + threads - 1) / threads, 132 * 32);
  if (vec)
    embedding_kernel<uint4><<<static_cast<unsigned>(grid), threads, 0, stream>>>(
        static_cast<const uint4*>(table), vocab, per_row, ids, M, static_cast<uint4*>(out));
  else
    embedding_kernel<uint16_t><<<static_cast<unsigned>(grid), threads, 0, stream>>>(
        static_cast<const uint16_t*>(table), vocab, per_row, ids, M, static_cast<uint16_t*>(out));
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

}  // namespace slidesparse::cuda::kernels
