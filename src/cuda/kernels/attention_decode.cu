// Decode attention (one query per sequence) over the KV cache, split-KV ("flash-decoding"): the
// context of each sequence is cut into fixed chunks; one CTA handles one chunk of one kv head for
// all the q heads that share it (up to 8), writes an unnormalized partial result (o, max, sum),
// and a combine kernel merges the chunks. Grids depend on B and max_ctx only, so a captured CUDA
// graph stays valid as kv_len grows; CTAs whose chunk starts past kv_len[b] exit at once.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/kernels/attention.cuh"
#include "cuda/kernels/mma_sm80.cuh"

namespace slidesparse::cuda::kernels {
namespace {

using namespace sm80;

constexpr int kThreads = 128;
constexpr int kTile = 64;             // keys per tile (scores staged in shared memory)
constexpr int64_t kMaxItems = 1024;   // target bound on B * splits
constexpr int64_t kMinChunk = kTile;  // smallest chunk (keys per split)

// Chunk length (keys per split, a multiple of kTile): the smallest power-of-two multiple of kTile
// with B * ceil(max_ctx / chunk) <= kMaxItems, or one chunk covering max_ctx.
int64_t decode_chunk(int64_t B, int64_t max_ctx) {
  int64_t c = kMinChunk;
  while (c < max_ctx && B * ((max_ctx + c - 1) / c) > kMaxItems) c *= 2;
  return c;
}

__device__ __forceinline__ void to_f32x8(const uint4& raw, float (&f)[8], const __nv_bfloat16*) {
  const __nv_bfloat162* p = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __bfloat1622float2(p[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}
__device__ __forceinline__ void to_f32x8(const uint4& raw, float (&f)[8], const __half*) {
  const __half2* p = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __half22float2(p[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Grid: x = split, y = kv head * head groups, z = sequence. A key is read by kLpk lanes (16 bytes
// each); the CTA covers kTile keys per step, each lane holding kKpg keys of K and V in registers.
template <class T, int HD, int RMAX>
__global__ void __launch_bounds__(kThreads)
    decode_split_kernel(const T* __restrict__ q, int64_t ldq, const T* __restrict__ k_cache,
                        const T* __restrict__ v_cache, int64_t max_ctx,
                        const int32_t* __restrict__ kv_len, int H, int KV, int rep, int hgroups,
                        int64_t chunk, int nsplit, float scale_log2, T* __restrict__ out,
                        int64_t ldo, float* __restrict__ ws_o, float2* __restrict__ ws_ml) {
  constexpr int kLpk = HD / 8;              // lanes per key
  constexpr int kGroups = kThreads / kLpk;  // keys in flight per step
  constexpr int kKpg = kTile / kGroups;     // keys per lane group per tile
  constexpr int kOwn = (RMAX + 3) / 4;      // heads whose softmax state one warp owns
  static_assert(kKpg >= 1 && kKpg * kGroups == kTile, "tile must be a multiple of the groups");
  __shared__ float s_p[RMAX][kTile];  // scores, then probabilities, of the current tile
  __shared__ float s_corr[RMAX];
  __shared__ float2 s_ml[RMAX];
  __shared__ float s_o[4][RMAX][HD];

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int grp = tid / kLpk, li = tid % kLpk;
  const int64_t b = blockIdx.z;
  const int split = blockIdx.x;
  const int kvh = blockIdx.y / hgroups, hg = blockIdx.y % hgroups;
  const int h0 = kvh * rep + hg * RMAX;
  const int nh = min(RMAX, rep - hg * RMAX);
  const int64_t len = min64(max64(kv_len[b], 0), max_ctx);
  const int64_t k_begin = split * chunk;
  if (k_begin >= len) {
    if (nsplit == 1)  // empty context: zeros
      for (int i = tid; i < nh * HD; i += kThreads)
        out[b * ldo + static_cast<int64_t>(h0 + i / HD) * HD + i % HD] = from_f32<T>(0.0f);
    return;
  }
  const int64_t k_end = min(k_begin + chunk, len);

  float qv[RMAX][8];
#pragma unroll
  for (int r = 0; r < RMAX; ++r) {
    if (r < nh) {
      const uint4 raw =
          *reinterpret_cast<const uint4*>(q + b * ldq + static_cast<int64_t>(h0 + r) * HD + li * 8);
      to_f32x8(raw, qv[r], q);
#pragma unroll
      for (int e = 0; e < 8; ++e) qv[r][e] *= scale_log2;
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) qv[r][e] = 0.0f;
    }
  }
  float o[RMAX][8];
#pragma unroll
  for (int r = 0; r < RMAX; ++r)
#pragma unroll
    for (int e = 0; e < 8; ++e) o[r][e] = 0.0f;
  float m_run[kOwn], l_run[kOwn];
#pragma unroll
  for (int i = 0; i < kOwn; ++i) m_run[i] = -INFINITY, l_run[i] = 0.0f;

  const int64_t ldkv = static_cast<int64_t>(KV) * HD;
  const T* kb = k_cache + b * max_ctx * ldkv + static_cast<int64_t>(kvh) * HD + li * 8;
  const T* vb = v_cache + b * max_ctx * ldkv + static_cast<int64_t>(kvh) * HD + li * 8;

  for (int64_t t0 = k_begin; t0 < k_end; t0 += kTile) {
    uint4 kr[kKpg], vr[kKpg];
#pragma unroll
    for (int i = 0; i < kKpg; ++i) {
      const int64_t key = t0 + grp + i * kGroups;
      if (key < k_end) {
        kr[i] = __ldg(reinterpret_cast<const uint4*>(kb + key * ldkv));
        vr[i] = __ldg(reinterpret_cast<const uint4*>(vb + key * ldkv));
      } else {
        kr[i] = vr[i] = make_uint4(0, 0, 0, 0);
      }
    }
    // Scores (log2 domain: q carries scale * log2 e).
#pragma unroll
    for (int i = 0; i < kKpg; ++i) {
      float kf[8];
      to_f32x8(kr[i], kf, q);
      const int kt = grp + i * kGroups;
      const bool valid = t0 + kt < k_end;
#pragma unroll
      for (int r = 0; r < RMAX; ++r) {
        float d = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) d = fmaf(qv[r][e], kf[e], d);
#pragma unroll
        for (int off = 1; off < kLpk; off *= 2) d += __shfl_xor_sync(0xffffffffu, d, off);
        if (li == 0) s_p[r][kt] = valid ? d : -INFINITY;
      }
    }
    __syncthreads();
    // Softmax state update: warp w owns heads w, w + 4.
#pragma unroll
    for (int i = 0; i < kOwn; ++i) {
      const int r = i * 4 + warp;
      if (r < nh) {
        const float a = s_p[r][lane], c = s_p[r][lane + 32];
        const float m_new = fmaxf(m_run[i], warp_max(fmaxf(a, c)));  // key t0 is valid: finite
        const float corr = fast_exp2(m_run[i] - m_new);
        const float pa = fast_exp2(a - m_new), pc = fast_exp2(c - m_new);
        s_p[r][lane] = pa;
        s_p[r][lane + 32] = pc;
        l_run[i] = l_run[i] * corr + warp_sum(pa + pc);
        m_run[i] = m_new;
        if (lane == 0) s_corr[r] = corr;
      }
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < RMAX; ++r) {
      if (r < nh) {
        const float corr = s_corr[r];
#pragma unroll
        for (int e = 0; e < 8; ++e) o[r][e] *= corr;
#pragma unroll
        for (int i = 0; i < kKpg; ++i) {
          const float p = s_p[r][grp + i * kGroups];
          float vf[8];
          to_f32x8(vr[i], vf, q);
#pragma unroll
          for (int e = 0; e < 8; ++e) o[r][e] = fmaf(p, vf[e], o[r][e]);
        }
      }
    }
    __syncthreads();  // s_p / s_corr are rewritten by the next tile
  }

  // Sum the lane groups: within the warp by shuffles, across the 4 warps through shared memory.
#pragma unroll
  for (int r = 0; r < RMAX; ++r)
#pragma unroll
    for (int e = 0; e < 8; ++e)
#pragma unroll
      for (int off = kLpk; off < 32; off *= 2)
        o[r][e] += __shfl_xor_sync(0xffffffffu, o[r][e], off);
  if (lane < kLpk) {
#pragma unroll
    for (int r = 0; r < RMAX; ++r)
      if (r < nh)
#pragma unroll
        for (int e = 0; e < 8; ++e) s_o[warp][r][li * 8 + e] = o[r][e];
  }
#pragma unroll
  for (int i = 0; i < kOwn; ++i) {
    const int r = i * 4 + warp;
    if (r < nh && lane == 0) s_ml[r] = make_float2(m_run[i], l_run[i]);
  }
  __syncthreads();
  for (int idx = tid; idx < nh * HD; idx += kThreads) {
    const int r = idx / HD, d = idx % HD;
    const float v = s_o[0][r][d] + s_o[1][r][d] + s_o[2][r][d] + s_o[3][r][d];
    const int64_t row = b * H + h0 + r;
    if (nsplit == 1) {
      out[b * ldo + static_cast<int64_t>(h0 + r) * HD + d] = from_f32<T>(v / s_ml[r].y);
    } else {
      ws_o[(row * nsplit + split) * HD + d] = v;
      if (d == 0) ws_ml[row * nsplit + split] = s_ml[r];
    }
  }
}

// Grid: x = q head, y = sequence; one thread per output element of the head.
template <class T, int HD>
__global__ void __launch_bounds__(HD)
    decode_combine_kernel(const float* __restrict__ ws_o, const float2* __restrict__ ws_ml,
                          const int32_t* __restrict__ kv_len, int64_t max_ctx, int H, int64_t chunk,
                          int nsplit, T* __restrict__ out, int64_t ldo) {
  const int h = blockIdx.x, d = threadIdx.x;
  const int64_t b = blockIdx.y;
  const int64_t len = min64(max64(kv_len[b], 0), max_ctx);
  const int n = static_cast<int>((len + chunk - 1) / chunk);
  const int64_t base = (b * H + h) * nsplit;
  float m = -INFINITY;
  for (int i = 0; i < n; ++i) m = fmaxf(m, ws_ml[base + i].x);
  float num = 0.0f, den = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float2 ml = ws_ml[base + i];
    const float w = fast_exp2(ml.x - m);
    den = fmaf(w, ml.y, den);
    num = fmaf(w, ws_o[(base + i) * HD + d], num);
  }
  out[b * ldo + static_cast<int64_t>(h) * HD + d] = from_f32<T>(n > 0 ? num / den : 0.0f);
}

struct DecodeArgs {
  const void* q;
  int64_t ldq;
  const void* k_cache;
  const void* v_cache;
  int64_t max_ctx;
  const int32_t* kv_len;
  int64_t B, H, KV;
  void* out;
  int64_t ldo;
  float* ws_o;
  float2* ws_ml;
  int64_t chunk, nsplit;
};

template <class T, int HD, int RMAX>
Status launch_r(const DecodeArgs& a, cudaStream_t stream) {
  const int rep = static_cast<int>(a.H / a.KV);
  const int hgroups = (rep + RMAX - 1) / RMAX;
  const dim3 grid(static_cast<unsigned>(a.nsplit), static_cast<unsigned>(a.KV * hgroups),
                  static_cast<unsigned>(a.B));
  const float scale_log2 = static_cast<float>(1.0 / std::sqrt(static_cast<double>(HD)) * M_LOG2E);
  decode_split_kernel<T, HD, RMAX><<<grid, kThreads, 0, stream>>>(
      static_cast<const T*>(a.q), a.ldq, static_cast<const T*>(a.k_cache),
      static_cast<const T*>(a.v_cache), a.max_ctx, a.kv_len, static_cast<int>(a.H),
      static_cast<int>(a.KV), rep, hgroups, a.chunk, static_cast<int>(a.nsplit), scale_log2,
      static_cast<T*>(a.out), a.ldo, a.ws_o, a.ws_ml);
  SS_CUDA_TRY(cudaGetLastError());
  if (a.nsplit > 1) {
    decode_combine_kernel<T, HD>
        <<<dim3(static_cast<unsigned>(a.H), static_cast<unsigned>(a.B)), HD, 0, stream>>>(
            a.ws_o, a.ws_ml, a.kv_len, a.max_ctx, static_cast<int>(a.H), a.chunk,
            static_cast<int>(a.nsplit), static_cast<T*>(a.out), a.ldo);
    SS_CUDA_TRY(cudaGetLastError());
  }
  return Status::Ok();
}

template <class T, int HD>
Status launch_hd(const DecodeArgs& a, cudaStream_t stream) {
  const int64_t rep = a.H / a.KV;
  if (rep == 1) return launch_r<T, HD, 1>(a, stream);
  if (rep == 2) return launch_r<T, HD, 2>(a, stream);
  if (rep <= 4) return launch_r<T, HD, 4>(a, stream);
  return launch_r<T, HD, 8>(a, stream);
}

template <class T>
Status launch_t(const DecodeArgs& a, int64_t hd, cudaStream_t stream) {
  switch (hd) {
    case 16:
      return launch_hd<T, 16>(a, stream);
    case 32:
      return launch_hd<T, 32>(a, stream);
    case 64:
      return launch_hd<T, 64>(a, stream);
    default:
      return launch_hd<T, 128>(a, stream);
  }
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

size_t attention_decode_workspace_bytes(int64_t B, int64_t H, int64_t hd, int64_t max_ctx) {
  if (B <= 0 || H <= 0 || hd <= 0 || max_ctx <= 0) return 0;
  // Any launch with B' <= B has B' * splits <= min(max(B, kMaxItems), B * ceil(max_ctx / 64)).
  const int64_t items =
      std::min(std::max(B, kMaxItems), B * ((max_ctx + kMinChunk - 1) / kMinChunk));
  return static_cast<size_t>(items * H) *
         (static_cast<size_t>(hd) * sizeof(float) + sizeof(float2));
}

Status launch_attention_decode(DType t, const void* q, int64_t ldq, const void* k_cache,
                               const void* v_cache, int64_t max_ctx, const int32_t* kv_len,
                               int64_t B, int64_t H, int64_t KV, int64_t hd, void* out, int64_t ldo,
                               void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  const std::string what = "attention_decode: ";
  if (t != DType::kBF16 && t != DType::kF16)
    return unsupported(what + "dtype " + dtype_name(t) + " not supported (expected BF16 or F16)");
  if (hd != 16 && hd != 32 && hd != 64 && hd != 128)
    return unsupported(what + "head dim " + std::to_string(hd) + " not supported (16/32/64/128)");
  if (H <= 0 || KV <= 0 || H % KV != 0 || H > 65535)
    return invalid_argument(what + "heads H=" + std::to_string(H) + " KV=" + std::to_string(KV) +
                            " (expected 0 < KV, H % KV == 0, H <= 65535)");
  if (B < 0 || B > 65535 || max_ctx <= 0 || ldq < H * hd || ldo < H * hd)
    return invalid_argument(what + "bad sizes B=" + std::to_string(B) +
                            " max_ctx=" + std::to_string(max_ctx) + " ldq=" + std::to_string(ldq) +
                            " ldo=" + std::to_string(ldo) + " (expected B <= 65535, ld >= H*hd)");
  if (ldq % 8 != 0 || !aligned16(q) || !aligned16(k_cache) || !aligned16(v_cache) ||
      !aligned16(out) || ldo % 2 != 0)
    return invalid_argument(what + "q/k/v/out must be 16-byte aligned, ldq a multiple of 8");
  if (!kv_len) return invalid_argument(what + "kv_len is null");
  if (B == 0) return Status::Ok();
  DecodeArgs a{q,  ldq, k_cache, v_cache, max_ctx, kv_len, B, H,
               KV, out, ldo,     nullptr, nullptr, 0,      0};
  a.chunk = decode_chunk(B, max_ctx);
  a.nsplit = (max_ctx + a.chunk - 1) / a.chunk;
  if (a.nsplit > 1) {
    const size_t rows = static_cast<size_t>(B * H * a.nsplit);
    const size_t need = rows * (static_cast<size_t>(hd) * sizeof(float) + sizeof(float2));
    if (!workspace || workspace_bytes < need || reinterpret_cast<uintptr_t>(workspace) % 16 != 0)
      return invalid_argument(what + "workspace of " + std::to_string(workspace_bytes) +
                              " bytes too small or misaligned (need " + std::to_string(need) +
                              ", see attention_decode_workspace_bytes)");
    a.ws_o = static_cast<float*>(workspace);
    a.ws_ml = reinterpret_cast<float2*>(a.ws_o + rows * hd);
  }
  if (t == DType::kBF16) return launch_t<__nv_bfloat16>(a, hd, stream);
  return launch_t<__half>(a, hd, stream);
}

}  // namespace slidesparse::cuda::kernels
