// RoPE + KV-cache write: one CTA per token row. The row's cos/sin table (hd/2 frequencies) is built
// once in shared memory, then q heads are rotated in place, k heads rotated into k_cache and v
// copied into v_cache, 8 pairs per thread-iteration (16-byte accesses) when hd % 16 == 0.
#include <string>

#include "cuda/kernels/rope_kv.cuh"
#include "cuda/kernels/row_ops.cuh"

namespace slidesparse::cuda::kernels {
namespace {

constexpr int kRopeMaxHalf = 256;  // hd <= 512

template <class T, bool VEC>
__global__ void rope_kv_kernel(T* __restrict__ qkv, int64_t ld, int H, int KV, int hd,
                               const int32_t* __restrict__ pos, const int32_t* __restrict__ slot,
                               const float* __restrict__ inv_freq, T* __restrict__ k_cache,
                               T* __restrict__ v_cache, int64_t max_ctx) {
  __shared__ float cs[kRopeMaxHalf], sn[kRopeMaxHalf];
  constexpr int V = VEC ? 8 : 1;
  const int64_t r = blockIdx.x;
  const int half = hd / 2, tid = threadIdx.x, nt = blockDim.x;
  const int32_t p = pos[r], sl = slot[r];
  for (int i = tid; i < half; i += nt) {
    // HF: freqs = inv_freq * pos in fp32; cos/sin of that fp32 angle (here in fp64, so the fp32
    // value is the correctly rounded one on host and device alike), then rounded to T.
    const float ang = __fmul_rn(static_cast<float>(p), inv_freq[i]);
    double s, c;
    sincos(static_cast<double>(ang), &s, &c);
    cs[i] = round_to<T>(__double2float_rn(c));
    sn[i] = round_to<T>(__double2float_rn(s));
  }
  __syncthreads();
  const bool to_cache = p >= 0 && p < max_ctx && sl >= 0;
  const int64_t kv_w = static_cast<int64_t>(KV) * hd;
  const int64_t cache_row = (static_cast<int64_t>(sl) * max_ctx + p) * kv_w;
  T* row = qkv + r * ld;
  const int per_head = half / V, items = (H + KV) * per_head;
  for (int it = tid; it < items; it += nt) {
    const int h = it / per_head, i0 = (it - h * per_head) * V;
    T* src = row + static_cast<int64_t>(h) * hd + i0;
    Pack8<T> a, b, o1, o2;
    if constexpr (VEC) {
      a.u = *reinterpret_cast<const uint4*>(src);
      b.u = *reinterpret_cast<const uint4*>(src + half);
    } else {
      a.e[0] = src[0];
      b.e[0] = src[half];
    }
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float x1 = to_f32(a.e[k]), x2 = to_f32(b.e[k]);
      const float c = cs[i0 + k], s = sn[i0 + k];
      // x' = T(T(x * cos) + T(rot(x) * sin)), rot(x) = (-x2, x1)
      o1.e[k] =
          from_f32<T>(__fadd_rn(round_to<T>(__fmul_rn(x1, c)), round_to<T>(__fmul_rn(-x2, s))));
      o2.e[k] =
          from_f32<T>(__fadd_rn(round_to<T>(__fmul_rn(x2, c)), round_to<T>(__fmul_rn(x1, s))));
    }
    T* dst = src;
    if (h >= H) {
      if (!to_cache) continue;
      dst = k_cache + cache_row + static_cast<int64_t>(h - H) * hd + i0;
    }
    if constexpr (VEC) {
      *reinterpret_cast<uint4*>(dst) = o1.u;
      *reinterpret_cast<uint4*>(dst + half) = o2.u;
    } else {
      dst[0] = o1.e[0];
      dst[half] = o2.e[0];
    }
  }
  if (!to_cache) return;
  const T* v = row + static_cast<int64_t>(H + KV) * hd;
  T* vd = v_cache + cache_row;
  for (int64_t c = tid * V; c < kv_w; c += nt * V) {
    if constexpr (VEC)
      *reinterpret_cast<uint4*>(vd + c) = *reinterpret_cast<const uint4*>(v + c);
    else
      vd[c] = v[c];
  }
}

template <class T, bool VEC>
Status launch_t(void* qkv, int64_t ld, int64_t M, int64_t H, int64_t KV, int64_t hd,
                const int32_t* pos, const int32_t* slot, const float* inv_freq, void* k_cache,
                void* v_cache, int64_t max_ctx, cudaStream_t stream) {
  rope_kv_kernel<T, VEC><<<static_cast<unsigned>(M), 128, 0, stream>>>(
      static_cast<T*>(qkv), ld, static_cast<int>(H), static_cast<int>(KV), static_cast<int>(hd),
      pos, slot, inv_freq, static_cast<T*>(k_cache), static_cast<T*>(v_cache), max_ctx);
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

}  // namespace

Status launch_rope_kv(DType t, void* qkv, int64_t ld, int64_t M, int64_t H, int64_t KV, int64_t hd,
                      const int32_t* pos, const int32_t* slot, const float* inv_freq, void* k_cache,
                      void* v_cache, int64_t max_ctx, cudaStream_t stream) {
  SS_RETURN_IF_ERROR(check_16bit("rope_kv", t));
  if (M < 0 || M > 0x7fffffff || H <= 0 || KV <= 0 || H % KV != 0 || hd <= 0 || hd % 2 != 0 ||
      hd > 2 * kRopeMaxHalf || max_ctx <= 0 || (H + 2 * KV) * hd > ld || (H + KV) * hd > 1 << 30)
    return invalid_argument("rope_kv: bad sizes M=" + std::to_string(M) +
                            " H=" + std::to_string(H) + " KV=" + std::to_string(KV) +
                            " hd=" + std::to_string(hd) + " ld=" + std::to_string(ld) +
                            " (need H % KV == 0, even hd <= 512, ld >= (H + 2 KV) hd)");
  if (M == 0) return Status::Ok();
  if (!qkv || !pos || !slot || !inv_freq || !k_cache || !v_cache)
    return invalid_argument("rope_kv: null pointer argument");
  const bool vec =
      hd % 16 == 0 && ld % 8 == 0 && aligned16(qkv) && aligned16(k_cache) && aligned16(v_cache);
  if (t == DType::kBF16)
    return vec ? launch_t<__nv_bfloat16, true>(qkv, ld, M, H, KV, hd, pos, slot, inv_freq, k_cache,
                                               v_cache, max_ctx, stream)
               : launch_t<__nv_bfloat16, false>(qkv, ld, M, H, KV, hd, pos, slot, inv_freq, k_cache,
                                                v_cache, max_ctx, stream);
  return vec ? launch_t<__half, true>(qkv, ld, M, H, KV, hd, pos, slot, inv_freq, k_cache, v_cache,
                                      max_ctx, stream)
             : launch_t<__half, false>(qkv, ld, M, H, KV, hd, pos, slot, inv_freq, k_cache, v_cache,
                                       max_ctx, stream);
}

}  // namespace slidesparse::cuda::kernels
