// Argmax: one CTA of 512 threads per row, 16-byte loads when the row stride and pointer allow it;
// each thread keeps its best (value, index), then a warp-shuffle and shared-memory reduction
// where a larger value wins and equal values go to the lower index.
#include <cfloat>
#include <climits>
#include <string>

#include "cuda/kernels/argmax.cuh"
#include "cuda/kernels/row_ops.cuh"

namespace slidesparse::cuda::kernels {
namespace {

__device__ __forceinline__ float ld_f32(float v) {
  return v;
}
__device__ __forceinline__ float ld_f32(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ float ld_f32(__half v) {
  return __half2float(v);
}

// (v, i) better than (bv, bi)? Candidates are never NaN; an empty candidate has bi = INT_MAX.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
  return v > bv || (v == bv && i < bi);
}

template <class T, bool VEC>
__global__ void argmax_kernel(const T* __restrict__ x, int64_t ld, int V, int32_t* out) {
  __shared__ float sv[32];
  __shared__ int si[32];
  const T* row = x + blockIdx.x * ld;
  float bv = -INFINITY;
  int bi = INT_MAX;
  constexpr int E = 16 / sizeof(T);
  int c0 = 0;
  if constexpr (VEC) {
    const int vend = V / E * E;
    for (int c = threadIdx.x * E; c < vend; c += blockDim.x * E) {
      T e[E];
      *reinterpret_cast<uint4*>(e) = __ldg(reinterpret_cast<const uint4*>(row + c));
#pragma unroll
      for (int k = 0; k < E; ++k) {
        const float v = ld_f32(e[k]);
        if (better(v, c + k, bv, bi)) {  // NaN compares false
          bv = v;
          bi = c + k;
        }
      }
    }
    c0 = vend;
  }
  for (int c = c0 + threadIdx.x; c < V; c += blockDim.x) {
    const float v = ld_f32(row[c]);
    if (better(v, c, bv, bi)) {
      bv = v;
      bi = c;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (better(ov, oi, bv, bi)) {
      bv = ov;
      bi = oi;
    }
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) {
    sv[warp] = bv;
    si[warp] = bi;
  }
  __syncthreads();
  if (warp != 0) return;
  const int nw = blockDim.x >> 5;
  bv = lane < nw ? sv[lane] : -INFINITY;
  bi = lane < nw ? si[lane] : INT_MAX;
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (better(ov, oi, bv, bi)) {
      bv = ov;
      bi = oi;
    }
  }
  if (lane == 0) out[blockIdx.x] = bi == INT_MAX ? 0 : bi;
}

template <class T>
Status launch_t(const void* x, int64_t ld, int64_t M, int64_t V, int32_t* out, cudaStream_t s) {
  const bool vec = (ld * static_cast<int64_t>(sizeof(T))) % 16 == 0 && aligned16(x);
  if (vec)
    argmax_kernel<T, true><<<static_cast<unsigned>(M), 512, 0, s>>>(static_cast<const T*>(x), ld,
                                                                    static_cast<int>(V), out);
  else
    argmax_kernel<T, false><<<static_cast<unsigned>(M), 512, 0, s>>>(static_cast<const T*>(x), ld,
                                                                     static_cast<int>(V), out);
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

}  // namespace

Status launch_argmax(DType t, const void* logits, int64_t ld, int64_t M, int64_t V, int32_t* out,
                     cudaStream_t stream) {
  if (t != DType::kBF16 && t != DType::kF16 && t != DType::kF32)
    return unsupported(std::string("argmax: dtype ") + dtype_name(t) +
                       " not supported (expected BF16, F16 or F32)");
  if (M < 0 || M > 0x7fffffff || V <= 0 || V >= INT_MAX || ld < V)
    return invalid_argument("argmax: bad sizes M=" + std::to_string(M) + " V=" + std::to_string(V) +
                            " ld=" + std::to_string(ld) + " (need ld >= V)");
  if (M == 0) return Status::Ok();
  if (!logits || !out) return invalid_argument("argmax: logits and out must not be null");
  if (t == DType::kBF16) return launch_t<__nv_bfloat16>(logits, ld, M, V, out, stream);
  if (t == DType::kF16) return launch_t<__half>(logits, ld, M, V, out, stream);
  return launch_t<float>(logits, ld, M, V, out, stream);
}

}  // namespace slidesparse::cuda::kernels
