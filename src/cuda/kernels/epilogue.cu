// Dequant + bias epilogue. One thread handles 8 consecutive outputs of a row; 16-byte loads of the
// accumulators when the row stride allows it; rows are strided over gridDim.y.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>

#include "cuda/cuda_check.h"
#include "cuda/kernels/epilogue.cuh"

namespace slidesparse::cuda::kernels {
namespace {

__device__ __forceinline__ float ld_f32(const int32_t* p) {
  return __int2float_rn(*p);
}
__device__ __forceinline__ float ld_f32(const float* p) {
  return *p;
}
__device__ __forceinline__ float ld_f32(const __nv_bfloat16* p) {
  return __bfloat162float(*p);
}
__device__ __forceinline__ float ld_f32(const __half* p) {
  return __half2float(*p);
}
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ float to_f32(__half v) {
  return __half2float(v);
}
__device__ __forceinline__ void st(__nv_bfloat16* p, float v) {
  *p = __float2bfloat16_rn(v);
}
__device__ __forceinline__ void st(__half* p, float v) {
  *p = __float2half_rn(v);
}

template <class TAcc, class TOut>
__global__ void epilogue_kernel(const TAcc* acc, int64_t ld_acc, const float* __restrict__ s_x,
                                const float* __restrict__ s_w, const float* __restrict__ bias,
                                TOut* y, int64_t ld_y, int64_t M, int64_t N, const TOut* res) {
  // Grid: x covers the column groups of 8, y strides over the rows (no integer division); the
  // per-column factors are loaded once per thread.
  const int64_t n0 = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) * 8;
  if (n0 >= N) return;
  const bool full = n0 + 8 <= N;
  const bool vec_in = full && sizeof(TAcc) == 4 && (ld_acc & 3) == 0;
  const bool vec_out = full && (ld_y & 7) == 0 && (reinterpret_cast<uintptr_t>(y) & 15) == 0;
  const bool vec_res = vec_out && (reinterpret_cast<uintptr_t>(res) & 15) == 0;
  float sw[8], bb[8];
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    const bool in = n0 + k < N;
    sw[k] = (s_w && in) ? s_w[n0 + k] : 1.0f;
    bb[k] = (bias && in) ? bias[n0 + k] : 0.0f;
  }
  for (int64_t m = blockIdx.y; m < M; m += gridDim.y) {
    const TAcc* a = acc + m * ld_acc + n0;
    float v[8];
    if (vec_in) {
      // 16-byte aligned: ld_acc % 4 == 0, n0 % 8 == 0, buffers from cudaMalloc.
      uint4 raw[2] = {reinterpret_cast<const uint4*>(a)[0], reinterpret_cast<const uint4*>(a)[1]};
      const TAcc* e = reinterpret_cast<const TAcc*>(raw);
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] = ld_f32(e + k);
    } else {
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] = n0 + k < N ? ld_f32(a + k) : 0.0f;
    }
    const float sx = s_x ? s_x[m] : 1.0f;
    alignas(16) TOut out[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      float r = v[k];
      if (s_x) r = __fmul_rn(r, sx);
      if (s_w) r = __fmul_rn(r, sw[k]);
      if (bias) r = __fadd_rn(r, bb[k]);
      st(&out[k], r);
    }
    if (res) {  // out = T(res + out): read before y is written (res may be y)
      alignas(16) TOut rr[8];
      const TOut* rp = res + m * ld_y + n0;
      if (vec_res) {
        *reinterpret_cast<uint4*>(rr) = *reinterpret_cast<const uint4*>(rp);
      } else {
        for (int k = 0; k < 8; ++k) rr[k] = n0 + k < N ? rp[k] : out[k];
      }
#pragma unroll
      for (int k = 0; k < 8; ++k) st(&out[k], __fadd_rn(to_f32(rr[k]), to_f32(out[k])));
    }
    TOut* yr = y + m * ld_y + n0;
    if (vec_out) {
      *reinterpret_cast<uint4*>(yr) = *reinterpret_cast<const uint4*>(out);
    } else {
      for (int k = 0; k < 8 && n0 + k < N; ++k) yr[k] = out[k];
    }
  }
}

template <class TAcc, class TOut>
Status launch_t(const void* acc, int64_t ld_acc, const float* s_x, const float* s_w,
                const float* bias, void* y, int64_t ld_y, int64_t M, int64_t N, cudaStream_t stream,
                const void* res) {
  const int threads = 128;
  const int64_t groups = (N + 7) / 8;
  dim3 grid(static_cast<unsigned>((groups + threads - 1) / threads),
            static_cast<unsigned>(M < 512 ? M : 512));
  epilogue_kernel<TAcc, TOut><<<grid, threads, 0, stream>>>(
      static_cast<const TAcc*>(acc), ld_acc, s_x, s_w, bias, static_cast<TOut*>(y), ld_y, M, N,
      static_cast<const TOut*>(res));
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

template <class TOut>
Status launch_out(DType acc_t, const void* acc, int64_t ld_acc, const float* s_x, const float* s_w,
                  const float* bias, void* y, int64_t ld_y, int64_t M, int64_t N,
                  cudaStream_t stream, const void* res) {
  switch (acc_t) {
    case DType::kI32:
      return launch_t<int32_t, TOut>(acc, ld_acc, s_x, s_w, bias, y, ld_y, M, N, stream, res);
    case DType::kF32:
      return launch_t<float, TOut>(acc, ld_acc, s_x, s_w, bias, y, ld_y, M, N, stream, res);
    case DType::kBF16:
      return launch_t<__nv_bfloat16, TOut>(acc, ld_acc, s_x, s_w, bias, y, ld_y, M, N, stream, res);
    case DType::kF16:
      return launch_t<__half, TOut>(acc, ld_acc, s_x, s_w, bias, y, ld_y, M, N, stream, res);
    default:
      return unsupported(std::string("epilogue: accumulator dtype ") + dtype_name(acc_t) +
                         " not supported (expected I32, F32, BF16 or F16)");
  }
}

}  // namespace

Status launch_epilogue(DType acc_t, const void* acc, int64_t ld_acc, const float* s_x,
                       const float* s_w, const float* bias, DType out_t, void* y, int64_t ld_y,
                       int64_t M, int64_t N, cudaStream_t stream, const void* residual) {
  if (M < 0 || N < 0 || ld_acc < N || ld_y < N)
    return invalid_argument("epilogue: bad sizes M=" + std::to_string(M) +
                            " N=" + std::to_string(N) + " ld_acc=" + std::to_string(ld_acc) +
                            " ld_y=" + std::to_string(ld_y));
  if (reinterpret_cast<uintptr_t>(acc) % 16 != 0)
    return invalid_argument("epilogue: accumulator pointer must be 16-byte aligned");
  if (M == 0 || N == 0) return Status::Ok();
  if (out_t == DType::kBF16)
    return launch_out<__nv_bfloat16>(acc_t, acc, ld_acc, s_x, s_w, bias, y, ld_y, M, N, stream,
                                     residual);
  if (out_t == DType::kF16)
    return launch_out<__half>(acc_t, acc, ld_acc, s_x, s_w, bias, y, ld_y, M, N, stream, residual);
  return unsupported(std::string("epilogue: output dtype ") + dtype_name(out_t) +
                     " not supported (expected BF16 or F16)");
}

}  // namespace slidesparse::cuda::kernels
