// Causal GQA prefill attention over the KV cache, FlashAttention-2 style: one CTA = 128 query
// rows of one head (4 warps x 32 rows, two m16 tiles per warp, so every K/V fragment loaded from
// shared memory feeds two MMAs; 64 rows, one tile per warp, on GPUs with less shared memory per
// block); Q stays in shared memory, key/value tiles of 64 rows stream through double-buffered
// shared memory with cp.async (104 KB at hd 128, 2 CTAs per SM on the H100); S = Q K^T
// and O += P V on tensor cores (mma.sync m16n8k16), online softmax in fp32, P rounded to T before
// P V, O in fp32 rounded to T once at the end. A warp skips key tiles that lie wholly past its last
// query row (the causal diagonal), which changes no arithmetic.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/kernels/attention.cuh"
#include "cuda/kernels/attention_prefill_launch.cuh"
#include "cuda/kernels/attention_prefill_sm90.cuh"
#include "cuda/kernels/mma_sm80.cuh"

namespace slidesparse::cuda::kernels {
namespace {

using namespace sm80;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kBc = 64;                    // keys per tile
constexpr int64_t kWgmmaMinKeys = 1024;    // kAuto's switch to the sm_90 kernel (pos0 + L)
constexpr int64_t kOverlapMinKeys = 4096;  // ... and to its overlapped schedule

// MT m16 tiles per warp: MT = 2 (128-row CTAs) where the device's shared memory per block allows
// it, MT = 1 (64-row CTAs, 87 KB at hd 128) on GPUs with less (sm_86 / sm_89: 99 KB).
template <int HD, int MT>
struct Tile {
  static constexpr int kWarpRows = 16 * MT;       // query rows per warp
  static constexpr int kBr = kWarpRows * kWarps;  // query rows per CTA
  // Rows padded by 16 bytes: the 8 row addresses of one ldmatrix fall in distinct bank groups.
  static constexpr int kStride = HD + 8;
  static constexpr int kElems = (kBr + 4 * kBc) * kStride;  // Q, K[2], V[2]
  static constexpr size_t kBytes = kElems * 2;
};

// rows x HD tile -> smem (row stride HD + 8), rows >= valid zero (mma_sm80.cuh).
template <int HD, int ROWS, class T>
__device__ __forceinline__ void load_tile(T* dst, const T* src, int64_t ld, int valid,
                                          const T* safe, int tid) {
  cp_async_tile<HD, ROWS, kThreads, HD + 8>(dst, src, ld, valid, safe, tid);
}

// Grid: x = q head, y = query block (heaviest first), z = sequence. q heads of one kv head are
// neighbours in launch order, so their K/V tiles are read from L2 rather than DRAM.
template <class T, int HD, int MT>
__global__ void __launch_bounds__(kThreads, 2)
    prefill_kernel(const T* __restrict__ q, int64_t ldq, const T* __restrict__ k_cache,
                   const T* __restrict__ v_cache, int64_t max_ctx, int L, int64_t pos0, int rep,
                   int KV, T* __restrict__ out, int64_t ldo, float scale_log2) {
  constexpr int kStride = Tile<HD, MT>::kStride, kBr = Tile<HD, MT>::kBr;
  constexpr int kWarpRows = Tile<HD, MT>::kWarpRows;
  constexpr int kDk = HD / 16;  // k-steps of Q K^T
  constexpr int kNt = kBc / 8;  // n-tiles of S
  extern __shared__ uint4 smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);  // [kBr][kStride]
  T* sK = sQ + kBr * kStride;              // [2][kBc][kStride]
  T* sV = sK + 2 * kBc * kStride;          // [2][kBc][kStride]

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const PrefillBlock<T, HD> pb(q, ldq, k_cache, v_cache, max_ctx, L, pos0, rep, KV, kBr, kBc);
  const int h = pb.h, i0 = pb.i0, q_rows = pb.q_rows, n_tiles = pb.n_tiles;
  const int64_t s = pb.s, kv_end = pb.kv_end, ldkv = pb.ldkv;
  const T *qg = pb.qg, *kg = pb.kg, *vg = pb.vg;

  load_tile<HD, kBr>(sQ, qg, ldq, q_rows, qg, tid);
  load_tile<HD, kBc>(sK, kg, ldkv, static_cast<int>(min64(kBc, kv_end)), kg, tid);
  load_tile<HD, kBc>(sV, vg, ldkv, static_cast<int>(min64(kBc, kv_end)), vg, tid);
  cp_async_commit();

  float o[MT][HD / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int d = 0; d < HD / 8; ++d) o[mt][d][0] = o[mt][d][1] = o[mt][d][2] = o[mt][d][3] = 0.0f;
  float m_run[MT][2], l_run[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
    m_run[mt][0] = m_run[mt][1] = -INFINITY, l_run[mt][0] = l_run[mt][1] = 0.0f;
  const int wr0 = warp * kWarpRows;         // first tile row of this warp
  const int64_t qpos_lo = pos0 + i0 + wr0;  // smallest query position of this warp
  const T* sQw = sQ + (wr0 + (lane & 15)) * kStride + (lane >> 4) * 8;

  for (int j = 0; j < n_tiles; ++j) {
    const int buf = j & 1;
    cp_async_wait<0>();
    __syncthreads();        // tile j visible to all; everyone is done with tile j-1 (buffer buf^1)
    if (j + 1 < n_tiles) {  // prefetch tile j+1 while computing tile j
      const int64_t k0 = static_cast<int64_t>(j + 1) * kBc;
      const int valid = static_cast<int>(min64(kBc, kv_end - k0));
      load_tile<HD, kBc>(sK + (buf ^ 1) * kBc * kStride, kg + k0 * ldkv, ldkv, valid, kg, tid);
      load_tile<HD, kBc>(sV + (buf ^ 1) * kBc * kStride, vg + k0 * ldkv, ldkv, valid, vg, tid);
      cp_async_commit();
    }
    // Keys of this tile all lie past the warp's last query row: every score would be masked
    // (exp2 -> 0, the running max and sum unchanged), so the warp skips it.
    const int64_t kbase = static_cast<int64_t>(j) * kBc;
    if (kbase > qpos_lo + kWarpRows - 1) continue;

    // S = Q K^T for this warp's 32 rows x 64 keys.
    float sc[MT][kNt][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int n = 0; n < kNt; ++n)
        sc[mt][n][0] = sc[mt][n][1] = sc[mt][n][2] = sc[mt][n][3] = 0.0f;
    const T* sKb = sK + buf * kBc * kStride;
#pragma unroll
    for (int kd = 0; kd < kDk; ++kd) {
      uint32_t qf[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) ldmatrix_x4(qf[mt], sQw + mt * 16 * kStride + kd * 16);
#pragma unroll
      for (int np = 0; np < kBc / 16; ++np) {
        uint32_t b[4];
        ldmatrix_x4(b, sKb + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * kStride + kd * 16 +
                           ((lane >> 3) & 1) * 8);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816<T>(sc[mt][2 * np], qf[mt], b[0], b[1]);
          mma16816<T>(sc[mt][2 * np + 1], qf[mt], b[2], b[3]);
        }
      }
    }

    // Causal mask, only on tiles reaching past this warp's first query position.
    if (kbase + kBc - 1 > qpos_lo) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int n = 0; n < kNt; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int64_t key = kbase + n * 8 + (lane & 3) * 2 + (e & 1);
            const int64_t qpos = qpos_lo + mt * 16 + (lane >> 2) + (e >> 1) * 8;
            if (key > qpos) sc[mt][n][e] = -INFINITY;
          }
    }

    // Online softmax (log2 domain). Every row sees key 0 in tile 0, so m_run is finite from then
    // on.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = -INFINITY;
#pragma unroll
        for (int n = 0; n < kNt; ++n) mx = fmaxf(mx, fmaxf(sc[mt][n][2 * r], sc[mt][n][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m_run[mt][r], mx * scale_log2);
        const float alpha = fast_exp2(m_run[mt][r] - m_new);
        float sum = 0.0f;
#pragma unroll
        for (int n = 0; n < kNt; ++n) {
          sc[mt][n][2 * r] = fast_exp2(fmaf(sc[mt][n][2 * r], scale_log2, -m_new));
          sc[mt][n][2 * r + 1] = fast_exp2(fmaf(sc[mt][n][2 * r + 1], scale_log2, -m_new));
          sum += sc[mt][n][2 * r] + sc[mt][n][2 * r + 1];
        }
        l_run[mt][r] = l_run[mt][r] * alpha + sum;
        m_run[mt][r] = m_new;
#pragma unroll
        for (int d = 0; d < HD / 8; ++d) {
          o[mt][d][2 * r] *= alpha;
          o[mt][d][2 * r + 1] *= alpha;
        }
      }

    // O += P V: the S accumulators of two n-tiles are exactly the A fragment of a 16-key step.
    const T* sVb = sV + buf * kBc * kStride;
#pragma unroll
    for (int kc = 0; kc < kBc / 16; ++kc) {
      uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        a[mt][0] = pack2<T>(sc[mt][2 * kc][0], sc[mt][2 * kc][1]);
        a[mt][1] = pack2<T>(sc[mt][2 * kc][2], sc[mt][2 * kc][3]);
        a[mt][2] = pack2<T>(sc[mt][2 * kc + 1][0], sc[mt][2 * kc + 1][1]);
        a[mt][3] = pack2<T>(sc[mt][2 * kc + 1][2], sc[mt][2 * kc + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < HD / 16; ++dp) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, sVb + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kStride +
                                 dp * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816<T>(o[mt][2 * dp], a[mt], b[0], b[1]);
          mma16816<T>(o[mt][2 * dp + 1], a[mt], b[2], b[3]);
        }
      }
    }
  }

  // O / l, rounded once to T; padding rows (i >= L) are not stored.
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = l_run[mt][r];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = 1.0f / l;
      const int row = wr0 + mt * 16 + (lane >> 2) + r * 8;
      if (row >= q_rows) continue;
      T* orow = out + (s * L + i0 + row) * ldo + static_cast<int64_t>(h) * HD + (lane & 3) * 2;
#pragma unroll
      for (int d = 0; d < HD / 8; ++d)
        *reinterpret_cast<uint32_t*>(orow + d * 8) =
            pack2<T>(o[mt][d][2 * r] * inv, o[mt][d][2 * r + 1] * inv);
    }
}

template <class T, int HD, int MT>
Status launch_tile(const void* q, int64_t ldq, const void* k_cache, const void* v_cache,
                   int64_t max_ctx, int64_t S, int64_t L, int64_t pos0, int64_t H, int64_t KV,
                   void* out, int64_t ldo, cudaStream_t stream) {
  return launch_prefill_kernel<prefill_kernel<T, HD, MT>, T, HD>(
      Tile<HD, MT>::kBytes, Tile<HD, MT>::kBr, kThreads, q, ldq, k_cache, v_cache, max_ctx, S, L,
      pos0, H, KV, out, ldo, stream);
}

// rows_per_cta: 128 or 64.
template <class T, int HD>
Status launch_hd(const void* q, int64_t ldq, const void* k_cache, const void* v_cache,
                 int64_t max_ctx, int64_t S, int64_t L, int64_t pos0, int64_t H, int64_t KV,
                 void* out, int64_t ldo, int rows_per_cta, cudaStream_t stream) {
  if (rows_per_cta == 128)
    return launch_tile<T, HD, 2>(q, ldq, k_cache, v_cache, max_ctx, S, L, pos0, H, KV, out, ldo,
                                 stream);
  return launch_tile<T, HD, 1>(q, ldq, k_cache, v_cache, max_ctx, S, L, pos0, H, KV, out, ldo,
                               stream);
}

template <class T>
Status launch_t(const void* q, int64_t ldq, const void* k_cache, const void* v_cache,
                int64_t max_ctx, int64_t S, int64_t L, int64_t pos0, int64_t H, int64_t KV,
                int64_t hd, void* out, int64_t ldo, int rows, cudaStream_t stream) {
  switch (hd) {
    case 16:
      return launch_hd<T, 16>(q, ldq, k_cache, v_cache, max_ctx, S, L, pos0, H, KV, out, ldo, rows,
                              stream);
    case 32:
      return launch_hd<T, 32>(q, ldq, k_cache, v_cache, max_ctx, S, L, pos0, H, KV, out, ldo, rows,
                              stream);
    case 64:
      return launch_hd<T, 64>(q, ldq, k_cache, v_cache, max_ctx, S, L, pos0, H, KV, out, ldo, rows,
                              stream);
    default:
      return launch_hd<T, 128>(q, ldq, k_cache, v_cache, max_ctx, S, L, pos0, H, KV, out, ldo, rows,
                               stream);
  }
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

Status launch_attention_prefill(DType t, const void* q, int64_t ldq, const void* k_cache,
                                const void* v_cache, int64_t max_ctx, int64_t S, int64_t L,
                                int64_t pos0, int64_t H, int64_t KV, int64_t hd, void* out,
                                int64_t ldo, cudaStream_t stream, PrefillKernel kernel) {
  const std::string what = "attention_prefill: ";
  if (t != DType::kBF16 && t != DType::kF16)
    return unsupported(what + "dtype " + dtype_name(t) + " not supported (expected BF16 or F16)");
  if (hd != 16 && hd != 32 && hd != 64 && hd != 128)
    return unsupported(what + "head dim " + std::to_string(hd) + " not supported (16/32/64/128)");
  if (H <= 0 || KV <= 0 || H % KV != 0 || H > 65535)
    return invalid_argument(what + "heads H=" + std::to_string(H) + " KV=" + std::to_string(KV) +
                            " (expected 0 < KV, H % KV == 0, H <= 65535)");
  if (S < 0 || L < 0 || pos0 < 0 || S > 65535 || L > (int64_t{1} << 30) || pos0 + L > max_ctx ||
      ldq < H * hd || ldo < H * hd)
    return invalid_argument(what + "bad sizes S=" + std::to_string(S) + " L=" + std::to_string(L) +
                            " pos0=" + std::to_string(pos0) +
                            " max_ctx=" + std::to_string(max_ctx) + " ldq=" + std::to_string(ldq) +
                            " ldo=" + std::to_string(ldo) +
                            " (expected pos0 + L <= max_ctx, ld >= H*hd, S <= 65535)");
  if (ldq % 8 != 0 || ldo % 8 != 0 || !aligned16(q) || !aligned16(k_cache) || !aligned16(v_cache) ||
      !aligned16(out))
    return invalid_argument(what +
                            "q/k/v/out must be 16-byte aligned with ldq, ldo multiples of 8");
  int sm = 0;
  SS_RETURN_IF_ERROR(check_device(&sm));
  const bool wgmma_ok = attention_prefill_sm90_supports(sm, hd);
  if (prefill_kernel_is_wgmma(kernel) && !wgmma_ok)
    return unsupported(what + "the wgmma kernels need an sm_90 GPU and head dim 64 or 128 (sm_" +
                       std::to_string(sm) + ", hd " + std::to_string(hd) + ")");
  // Auto: the wgmma kernel from 1024 attended keys on (H100, Qwen2.5-7B heads, causal: 331 vs 254
  // TFLOPS at L = 1024, 504 vs 328 at 16384 -- docs/attention.md); shorter calls are not measured
  // and keep the mma.sync kernel. Its overlapped schedule from 4096 keys on (H100, same heads:
  // 3.49-3.65 vs 3.80-3.87 ms at L = 16384, 1.02 vs 1.05 at 4096, a tie at 2048, 1 % slower at
  // 1024 -- session 17, docs/attention.md).
  if (kernel == PrefillKernel::kAuto && wgmma_ok && pos0 + L >= kWgmmaMinKeys)
    kernel = pos0 + L >= kOverlapMinKeys ? PrefillKernel::kWgmmaOverlap : PrefillKernel::kWgmma;
  if (S == 0 || L == 0) return Status::Ok();
  if (prefill_kernel_is_wgmma(kernel))
    return launch_attention_prefill_sm90(t, q, ldq, k_cache, v_cache, max_ctx, S, L, pos0, H, KV,
                                         hd, out, ldo, kernel == PrefillKernel::kWgmmaOverlap,
                                         stream);
  int rows_per_cta = kernel == PrefillKernel::kMma64 ? 64 : 128;
  if (kernel == PrefillKernel::kAuto) {  // 128 rows where the shared memory per block allows
    int optin = 0;
    SS_RETURN_IF_ERROR(smem_optin_bytes(&optin));
    const size_t need = hd == 128  ? Tile<128, 2>::kBytes
                        : hd == 64 ? Tile<64, 2>::kBytes
                        : hd == 32 ? Tile<32, 2>::kBytes
                                   : Tile<16, 2>::kBytes;
    if (need > static_cast<size_t>(optin)) rows_per_cta = 64;
  }
  if (t == DType::kBF16)
    return launch_t<__nv_bfloat16>(q, ldq, k_cache, v_cache, max_ctx, S, L, pos0, H, KV, hd, out,
                                   ldo, rows_per_cta, stream);
  return launch_t<__half>(q, ldq, k_cache, v_cache, max_ctx, S, L, pos0, H, KV, hd, out, ldo,
                          rows_per_cta, stream);
}

Status prefill_kernel_parse(const char* name, PrefillKernel* out) {
  for (PrefillKernel k : {PrefillKernel::kAuto, PrefillKernel::kWgmma, PrefillKernel::kWgmmaOverlap,
                          PrefillKernel::kMma128, PrefillKernel::kMma64})
    if (std::string(name) == prefill_kernel_name(k)) {
      *out = k;
      return Status::Ok();
    }
  return invalid_argument(std::string("prefill attention kernel '") + name +
                          "' (expected auto, wgmma, wgmma_overlap, mma128 or mma64)");
}

const char* prefill_kernel_name(PrefillKernel k) {
  switch (k) {
    case PrefillKernel::kWgmma:
      return "wgmma";
    case PrefillKernel::kWgmmaOverlap:
      return "wgmma_overlap";
    case PrefillKernel::kMma128:
      return "mma128";
    case PrefillKernel::kMma64:
      return "mma64";
    default:
      return "auto";
  }
}

}  // namespace slidesparse::cuda::kernels
