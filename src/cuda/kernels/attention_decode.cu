// Decode attention (one query per sequence) over the KV cache, split-KV ("flash-decoding"): the
// context of each sequence is cut into fixed chunks; one CTA handles one chunk of one kv head for
// the q heads that share it (up to 16, the rows of a 16 x hd tensor-core tile), writes an
// unnormalized partial result (o, max, sum), and a combine kernel merges the chunks. K/V tiles of
// 64 keys stream through double-buffered shared memory (cp.async); warp w takes keys 16w..16w+15
// of each tile with its own online softmax, and the 4 warps merge at the end. Grids depend on B
// and max_ctx only, so a captured CUDA graph stays valid as kv_len grows; CTAs whose chunk starts
// past kv_len[b] exit at once.
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

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kRows = 16;             // q heads per CTA (one mma m-tile)
constexpr int kTile = 16 * kWarps;    // keys per tile, 16 per warp
constexpr int64_t kMaxItems = 1024;   // target bound on B * splits
constexpr int64_t kMinChunk = kTile;  // smallest chunk (keys per split)

// Chunk length (keys per split, a multiple of kTile): the smallest power-of-two multiple of kTile
// with B * ceil(max_ctx / chunk) <= kMaxItems, or one chunk covering max_ctx.
int64_t decode_chunk(int64_t B, int64_t max_ctx) {
  int64_t c = kMinChunk;
  while (c < max_ctx && B * ((max_ctx + c - 1) / c) > kMaxItems) c *= 2;
  return c;
}

template <int HD>
struct Smem {
  static constexpr int kStride = HD + 8;  // 16-byte row pad: conflict-free ldmatrix
  static constexpr int kPipeElems = (kRows + 4 * kTile) * kStride;  // Q, K[2], V[2]
  static constexpr size_t kMergeBytes = kWarps * kRows * (HD + 2) * sizeof(float);
  static constexpr size_t kBytes = kPipeElems * 2 > kMergeBytes ? kPipeElems * 2 : kMergeBytes;
};

// rows x HD tile -> smem (row stride HD + 8), rows >= valid zero (mma_sm80.cuh).
template <int HD, int ROWS, class T>
__device__ __forceinline__ void load_tile(T* dst, const T* src, int64_t ld, int valid,
                                          const T* safe, int tid) {
  cp_async_tile<HD, ROWS, kThreads, Smem<HD>::kStride>(dst, src, ld, valid, safe, tid);
}

// Grid: x = split, y = kv head * head groups, z = sequence.
template <class T, int HD>
__global__ void __launch_bounds__(kThreads)
    decode_split_kernel(const T* __restrict__ q, int64_t ldq, const T* __restrict__ k_cache,
                        const T* __restrict__ v_cache, int64_t max_ctx,
                        const int32_t* __restrict__ kv_len, int H, int KV, int rep, int hgroups,
                        int64_t chunk, int nsplit, float scale_log2, T* __restrict__ out,
                        int64_t ldo, float* __restrict__ ws_o, float2* __restrict__ ws_ml) {
  constexpr int kStride = Smem<HD>::kStride;
  constexpr int kDk = HD / 16;
  extern __shared__ uint4 smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);  // [kRows][kStride]
  T* sK = sQ + kRows * kStride;            // [2][kTile][kStride]
  T* sV = sK + 2 * kTile * kStride;        // [2][kTile][kStride]

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int64_t b = blockIdx.z;
  const int split = blockIdx.x;
  const int kvh = blockIdx.y / hgroups, hg = blockIdx.y % hgroups;
  const int h0 = kvh * rep + hg * kRows;
  const int nh = min(kRows, rep - hg * kRows);
  const int64_t len = min64(max64(kv_len[b], 0), max_ctx);
  const int64_t k_begin = split * chunk;
  if (k_begin >= len) {
    if (nsplit == 1)  // empty context: zeros
      for (int i = tid; i < nh * HD; i += kThreads)
        out[b * ldo + static_cast<int64_t>(h0) * HD + i] = from_f32<T>(0.0f);
    return;
  }
  const int64_t k_end = min64(k_begin + chunk, len);
  const int n_tiles = static_cast<int>((k_end - k_begin + kTile - 1) / kTile);
  const int64_t ldkv = static_cast<int64_t>(KV) * HD;
  const T* kg = k_cache + (b * max_ctx + k_begin) * ldkv + static_cast<int64_t>(kvh) * HD;
  const T* vg = v_cache + (b * max_ctx + k_begin) * ldkv + static_cast<int64_t>(kvh) * HD;
  const T* qg = q + b * ldq + static_cast<int64_t>(h0) * HD;  // heads h0.. are contiguous

  load_tile<HD, kRows>(sQ, qg, HD, nh, qg, tid);
  const int valid0 = static_cast<int>(min64(kTile, k_end - k_begin));
  load_tile<HD, kTile>(sK, kg, ldkv, valid0, kg, tid);
  load_tile<HD, kTile>(sV, vg, ldkv, valid0, vg, tid);
  cp_async_commit();

  uint32_t qf[kDk][4];
  float o[HD / 8][4];
#pragma unroll
  for (int d = 0; d < HD / 8; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  const int wk0 = warp * 16;  // this warp's keys within a tile

  for (int j = 0; j < n_tiles; ++j) {
    const int buf = j & 1;
    cp_async_wait<0>();
    __syncthreads();  // tile j visible to all; everyone is done with tile j-1 (buffer buf^1)
    if (j == 0) {
#pragma unroll
      for (int kd = 0; kd < kDk; ++kd)
        ldmatrix_x4(qf[kd], sQ + (lane & 15) * kStride + kd * 16 + (lane >> 4) * 8);
    }
    if (j + 1 < n_tiles) {
      const int64_t k0 = static_cast<int64_t>(j + 1) * kTile;
      const int valid = static_cast<int>(min64(kTile, k_end - k_begin - k0));
      load_tile<HD, kTile>(sK + (buf ^ 1) * kTile * kStride, kg + k0 * ldkv, ldkv, valid, kg, tid);
      load_tile<HD, kTile>(sV + (buf ^ 1) * kTile * kStride, vg + k0 * ldkv, ldkv, valid, vg, tid);
      cp_async_commit();
    }

    // S = Q K^T: 16 heads x this warp's 16 keys.
    float sc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
    const T* sKb = sK + buf * kTile * kStride;
#pragma unroll
    for (int kd = 0; kd < kDk; ++kd) {
      uint32_t bk[4];
      ldmatrix_x4(bk, sKb + (wk0 + (lane & 7) + ((lane >> 4) << 3)) * kStride + kd * 16 +
                          ((lane >> 3) & 1) * 8);
      mma16816<T>(sc[0], qf[kd], bk[0], bk[1]);
      mma16816<T>(sc[1], qf[kd], bk[2], bk[3]);
    }
    // Keys past the context (zero-filled in smem) are masked.
    const int64_t kbase = k_begin + static_cast<int64_t>(j) * kTile + wk0;
    if (kbase + 16 > k_end) {
#pragma unroll
      for (int n = 0; n < 2; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (kbase + n * 8 + (lane & 3) * 2 + (e & 1) >= k_end) sc[n][e] = -INFINITY;
    }
    // Online softmax (log2 domain); a warp may see only masked keys (m stays -inf, p = 0).
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx =
          fmaxf(fmaxf(sc[0][2 * r], sc[0][2 * r + 1]), fmaxf(sc[1][2 * r], sc[1][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m_run[r], mx * scale_log2);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = fast_exp2(m_run[r] - m_use);
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < 2; ++n) {
        sc[n][2 * r] = fast_exp2(fmaf(sc[n][2 * r], scale_log2, -m_use));
        sc[n][2 * r + 1] = fast_exp2(fmaf(sc[n][2 * r + 1], scale_log2, -m_use));
        sum += sc[n][2 * r] + sc[n][2 * r + 1];
      }
      l_run[r] = l_run[r] * alpha + sum;
      m_run[r] = m_new;
#pragma unroll
      for (int d = 0; d < HD / 8; ++d) {
        o[d][2 * r] *= alpha;
        o[d][2 * r + 1] *= alpha;
      }
    }
    // O += P V over this warp's 16 keys.
    const uint32_t a[4] = {pack2<T>(sc[0][0], sc[0][1]), pack2<T>(sc[0][2], sc[0][3]),
                           pack2<T>(sc[1][0], sc[1][1]), pack2<T>(sc[1][2], sc[1][3])};
    const T* sVb = sV + buf * kTile * kStride;
#pragma unroll
    for (int dp = 0; dp < HD / 16; ++dp) {
      uint32_t bv[4];
      ldmatrix_x4_trans(bv, sVb + (wk0 + (lane & 7) + ((lane >> 3) & 1) * 8) * kStride + dp * 16 +
                                (lane >> 4) * 8);
      mma16816<T>(o[2 * dp], a, bv[0], bv[1]);
      mma16816<T>(o[2 * dp + 1], a, bv[2], bv[3]);
    }
  }

  // Merge the 4 warps through shared memory (the pipeline buffers are free now).
  __syncthreads();
  float* s_o = reinterpret_cast<float*>(smem_raw);  // [kWarps][kRows][HD]
  float* s_m = s_o + kWarps * kRows * HD;           // [kWarps][kRows]
  float* s_l = s_m + kWarps * kRows;                // [kWarps][kRows]
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = l_run[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int row = (lane >> 2) + r * 8;
    float* so = s_o + (warp * kRows + row) * HD + (lane & 3) * 2;
#pragma unroll
    for (int d = 0; d < HD / 8; ++d) {
      so[d * 8] = o[d][2 * r];
      so[d * 8 + 1] = o[d][2 * r + 1];
    }
    if ((lane & 3) == 0) {
      s_m[warp * kRows + row] = m_run[r];
      s_l[warp * kRows + row] = l;
    }
  }
  __syncthreads();
  for (int idx = tid; idx < nh * HD; idx += kThreads) {
    const int r = idx / HD, d = idx % HD;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) m = fmaxf(m, s_m[w * kRows + r]);  // finite: key k_begin
    float v = 0.0f, l = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float f = fast_exp2(s_m[w * kRows + r] - m);
      v = fmaf(f, s_o[(w * kRows + r) * HD + d], v);
      l = fmaf(f, s_l[w * kRows + r], l);
    }
    const int64_t row = b * H + h0 + r;
    if (nsplit == 1) {
      out[b * ldo + static_cast<int64_t>(h0 + r) * HD + d] = from_f32<T>(v / l);
    } else {
      ws_o[(row * nsplit + split) * HD + d] = v;
      if (d == 0) ws_ml[row * nsplit + split] = make_float2(m, l);
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

template <class T, int HD>
Status launch_hd(const DecodeArgs& a, cudaStream_t stream) {
  const int rep = static_cast<int>(a.H / a.KV);
  const int hgroups = (rep + kRows - 1) / kRows;
  constexpr size_t smem = Smem<HD>::kBytes;
  auto kernel = decode_split_kernel<T, HD>;
  SS_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>(a.nsplit), static_cast<unsigned>(a.KV * hgroups),
                  static_cast<unsigned>(a.B));
  const float scale_log2 = static_cast<float>(1.0 / std::sqrt(static_cast<double>(HD)) * M_LOG2E);
  kernel<<<grid, kThreads, smem, stream>>>(
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
