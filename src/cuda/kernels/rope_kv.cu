// RoPE + KV-cache write: one CTA per token row. The row's cos/sin table (hd/2 frequencies) is built
// once in shared memory, then q heads are rotated in place (unless the prefill attention does it),
// k heads rotated into k_cache and v copied into v_cache, 8 pairs per thread-iteration (16-byte
// accesses) when hd % 16 == 0. Also the cos/sin table of every position (launch_rope_table).
#include <algorithm>
#include <string>

#include "cuda/kernels/rope_kv.cuh"
#include "cuda/kernels/row_ops.cuh"

namespace slidesparse::cuda::kernels {
namespace {

constexpr int kRopeMaxHalf = 256;  // hd <= 512

// HF: freqs = inv_freq * pos in fp32; cos/sin of that fp32 angle (here in fp64, so the fp32 value
// is the correctly rounded one on host and device alike), then rounded to T.
template <class T>
__device__ __forceinline__ void rope_cos_sin(int32_t p, float inv_freq, float* c, float* s) {
  const float ang = __fmul_rn(static_cast<float>(p), inv_freq);
  double sd, cd;
  sincos(static_cast<double>(ang), &sd, &cd);
  *c = round_to<T>(__double2float_rn(cd));
  *s = round_to<T>(__double2float_rn(sd));
}

template <class T>
__global__ void rope_table_kernel(const float* __restrict__ inv_freq, int half, int64_t n,
                                  T* __restrict__ cs) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float c, s;
    rope_cos_sin<T>(static_cast<int32_t>(e / half), inv_freq[e % half], &c, &s);
    cs[2 * e] = from_f32<T>(c);
    cs[2 * e + 1] = from_f32<T>(s);
  }
}

template <class T, bool VEC>
__global__ void rope_kv_kernel(T* __restrict__ qkv, int64_t ld, int H, int KV, int hd,
                               const int32_t* __restrict__ pos, const int32_t* __restrict__ slot,
                               const float* __restrict__ inv_freq, T* __restrict__ k_cache,
                               T* __restrict__ v_cache, int64_t max_ctx, bool rotate_q) {
  __shared__ float cs[kRopeMaxHalf], sn[kRopeMaxHalf];
  constexpr int V = VEC ? 8 : 1;
  const int64_t r = blockIdx.x;
  const int half = hd / 2, tid = threadIdx.x, nt = blockDim.x;
  const int32_t p = pos[r], sl = slot[r];
  const bool to_cache = p >= 0 && p < max_ctx && sl >= 0;
  if (!rotate_q && !to_cache) return;  // nothing to write (uniform over the CTA)
  for (int i = tid; i < half; i += nt) rope_cos_sin<T>(p, inv_freq[i], &cs[i], &sn[i]);
  __syncthreads();
  const int64_t kv_w = static_cast<int64_t>(KV) * hd;
  const int64_t cache_row = (static_cast<int64_t>(sl) * max_ctx + p) * kv_w;
  T* row = qkv + r * ld;
  const int per_head = half / V, items = (H + KV) * per_head;
  for (int it = rotate_q ? tid : H * per_head + tid; it < items; it += nt) {
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
                void* v_cache, int64_t max_ctx, cudaStream_t stream, bool rotate_q) {
  rope_kv_kernel<T, VEC><<<static_cast<unsigned>(M), 128, 0, stream>>>(
      static_cast<T*>(qkv), ld, static_cast<int>(H), static_cast<int>(KV), static_cast<int>(hd),
      pos, slot, inv_freq, static_cast<T*>(k_cache), static_cast<T*>(v_cache), max_ctx, rotate_q);
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

}  // namespace

Status launch_rope_kv(DType t, void* qkv, int64_t ld, int64_t M, int64_t H, int64_t KV, int64_t hd,
                      const int32_t* pos, const int32_t* slot, const float* inv_freq, void* k_cache,
                      void* v_cache, int64_t max_ctx, cudaStream_t stream, bool rotate_q) {
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
                                               v_cache, max_ctx, stream, rotate_q)
               : launch_t<__nv_bfloat16, false>(qkv, ld, M, H, KV, hd, pos, slot, inv_freq, k_cache,
                                                v_cache, max_ctx, stream, rotate_q);
  return vec ? launch_t<__half, true>(qkv, ld, M, H, KV, hd, pos, slot, inv_freq, k_cache, v_cache,
                                      max_ctx, stream, rotate_q)
             : launch_t<__half, false>(qkv, ld, M, H, KV, hd, pos, slot, inv_freq, k_cache, v_cache,
                                       max_ctx, stream, rotate_q);
}

Status launch_rope_table(DType t, const float* inv_freq, int64_t hd, int64_t n_pos, void* cs,
                         cudaStream_t stream) {
  SS_RETURN_IF_ERROR(check_16bit("rope_table", t));
  if (hd <= 0 || hd % 2 != 0 || hd > 2 * kRopeMaxHalf || n_pos < 0 || n_pos > 0x7fffffff)
    return invalid_argument("rope_table: bad sizes hd=" + std::to_string(hd) +
                            " n_pos=" + std::to_string(n_pos) + " (need even hd <= 512)");
  if (n_pos == 0) return Status::Ok();
  if (!inv_freq || !cs) return invalid_argument("rope_table: null pointer argument");
  const int64_t n = n_pos * (hd / 2);
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 4096));
  if (t == DType::kBF16)
    rope_table_kernel<__nv_bfloat16><<<grid, 256, 0, stream>>>(inv_freq, static_cast<int>(hd / 2),
                                                               n, static_cast<__nv_bfloat16*>(cs));
  else
    rope_table_kernel<__half>
        <<<grid, 256, 0, stream>>>(inv_freq, static_cast<int>(hd / 2), n, static_cast<__half*>(cs));
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

}  // namespace slidesparse::cuda::kernels
