// Causal GQA prefill attention for Hopper (sm_90a): the FlashAttention-2 schedule of
// attention_prefill.cu on warpgroup MMAs. One CTA = 128 query rows of one head, two warpgroups of
// 64 rows; key / value tiles of 128 rows stream through shared-memory stages, loaded with
// cp.async by warpgroup 1 and handed over through mbarriers, so the two warpgroups run out of
// step (one's softmax under the other's MMAs). Per tile and warpgroup: S = Q K^T as hd/16 wgmma
// m64n128k16 with both operands in shared memory (K-major), the causal mask and online softmax in
// fp32 on the accumulators, P rounded to T in registers, then O += P V as 8 wgmma m64n{hd}k16
// with P from registers and V read N-major (no transpose pass). Two schedules (template OVL):
// serial (S, wait, softmax, P V, wait; two stages, Q + K[2] + V[2] = 160 KB at hd 128) and
// overlapped (S of tile j and P V of tile j - 1 in flight together, the softmax of tile j under
// P V; three stages, 224 KB). One CTA per SM either way. Same arithmetic as the mma.sync kernel
// (fp32 scores, exp2 of the scaled scores, P in T, O in fp32 rounded once, in the same order in
// both schedules), so the same tolerances hold. hd 64 and 128.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <string>
#include <type_traits>

#include "cuda/cuda_check.h"
#include "cuda/kernels/attention_prefill_launch.cuh"
#include "cuda/kernels/attention_prefill_sm90.cuh"
#include "cuda/kernels/mma_sm80.cuh"
#include "cuda/kernels/wgmma_sm90.cuh"

namespace slidesparse::cuda::kernels {
namespace {

constexpr int kThreads = 256;  // two warpgroups
constexpr int kBr = 128;       // query rows per CTA (64 per warpgroup)
constexpr int kBc = 128;       // keys per tile

// K / V tiles in flight: 2 for the serial schedule (3 measured no faster: call 8), 3 for the
// overlapped one (a stage is freed one tile later there).
template <bool OVL>
constexpr int kStagesOf = OVL ? 3 : 2;

template <int HD, int STAGES>
struct Smem {
  static constexpr int kTile = kBc * HD * 2;  // bytes of one 128-row tile (Q, K or V)
  static constexpr size_t kBytes = (1 + 2 * STAGES) * kTile + 1024;  // Q, K[], V[], slack
};

// Rows r_lo .. r_lo+NROWS-1 of a 128-row x HD tile (global row stride ld elements) -> the
// swizzled shared tile (wgmma_sm90.cuh) by 128 threads; rows >= valid are zero-filled without
// reading global memory. Thread t copies granule t % (HD/8) of rows r_lo + t / (HD/8) + k * RS
// (RS = 128 / (HD/8) = 8 or 16 rows per step): r % 8 is the same in every step, so the swizzled
// offset just advances by RS * 128 bytes -- a few instructions per 16-byte copy (the loads are
// issued by the warpgroup that also computes).
template <int HD, int NROWS, class T>
__device__ __forceinline__ void load_rows(unsigned char* dst, const T* src, int64_t ld, int valid,
                                          int r_lo, int tid) {
  constexpr int kGran = HD / 8, kRS = 128 / kGran;
  static_assert(kRS % 8 == 0 && NROWS % kRS == 0, "rows per step keep the swizzle phase");
  const int g = tid % kGran;
  int r = r_lo + tid / kGran;
  unsigned char* d = dst + sm90::swz_offset(r, g, kBc);
  const T* sp = src + r * ld + g * 8;
#pragma unroll
  for (int k = 0; k < NROWS / kRS; ++k, r += kRS, d += kRS * 128, sp += kRS * ld) {
    const bool ok = r < valid;
    sm80::cp_async16(d, ok ? sp : src, ok ? 16 : 0);
  }
}

template <class T, int HD>
__device__ __forceinline__ void mma_s(float (&s)[64], uint32_t q_addr, uint32_t k_addr) {
  const uint32_t qlo = sm90::smem_desc_lo(q_addr, 16), klo = sm90::smem_desc_lo(k_addr, 16);
  constexpr uint32_t hi = sm90::smem_desc_hi(1024);
#pragma unroll
  for (int kd = 0; kd < HD / 16; ++kd) {
    const uint32_t off = ((kd / 4) * kBc * 128 + (kd % 4) * 32) / 16;
    const uint64_t da = sm90::desc_of(qlo + off, hi), db = sm90::desc_of(klo + off, hi);
    if constexpr (std::is_same_v<T, __nv_bfloat16>)
      sm90::wgmma_ss_n128_bf16(s, da, db, kd > 0);
    else
      sm90::wgmma_ss_n128_f16(s, da, db, kd > 0);
  }
}

template <class T, int HD>
__device__ __forceinline__ void mma_o(float (&o)[HD / 2], const uint32_t (&p)[kBc / 16][4],
                                      uint32_t v_addr) {
  const uint32_t vlo = sm90::smem_desc_lo(v_addr, kBc * 128);
  constexpr uint32_t hi = sm90::smem_desc_hi(1024);
#pragma unroll
  for (int kc = 0; kc < kBc / 16; ++kc) {
    const uint64_t db = sm90::desc_of(vlo + kc * 16 * 128 / 16, hi);
    if constexpr (HD == 128) {
      if constexpr (std::is_same_v<T, __nv_bfloat16>)
        sm90::wgmma_rs_n128_bf16(o, p[kc], db, 1);
      else
        sm90::wgmma_rs_n128_f16(o, p[kc], db, 1);
    } else {
      if constexpr (std::is_same_v<T, __nv_bfloat16>)
        sm90::wgmma_rs_n64_bf16(o, p[kc], db, 1);
      else
        sm90::wgmma_rs_n64_f16(o, p[kc], db, 1);
    }
  }
}

// Grid: x = q head, y = query block (heaviest first), z = sequence (as the mma.sync kernel).
template <class T, int HD, bool OVL>
__global__ void __launch_bounds__(kThreads, 1)
    prefill_sm90_kernel(const T* __restrict__ q, int64_t ldq, const T* __restrict__ k_cache,
                        const T* __restrict__ v_cache, int64_t max_ctx, int L, int64_t pos0,
                        int rep, int KV, T* __restrict__ out, int64_t ldo, float scale_log2) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace sm80;
  using namespace sm90;
  constexpr int kStages = kStagesOf<OVL>;
  constexpr int kTile = Smem<HD, kStages>::kTile;
  extern __shared__ unsigned char smem_raw[];
  __shared__ __align__(8) uint64_t bars[2 * kStages];  // full[kStages], empty[kStages]
  unsigned char* base = reinterpret_cast<unsigned char*>(
      (reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  unsigned char* sQ = base;
  unsigned char* sK = base + kTile;                  // [kStages]
  unsigned char* sV = base + (1 + kStages) * kTile;  // [kStages]
  const uint32_t full0 = smem_u32(&bars[0]), empty0 = smem_u32(&bars[kStages]);

  const int tid = threadIdx.x, wg = tid / 128, wtid = tid % 128, lane = tid % 32, wq = wtid / 32;
  const PrefillBlock<T, HD> pb(q, ldq, k_cache, v_cache, max_ctx, L, pos0, rep, KV, kBr, kBc);
  const int h = pb.h, i0 = pb.i0, q_rows = pb.q_rows, n_tiles = pb.n_tiles;
  const int64_t s = pb.s, kv_end = pb.kv_end, ldkv = pb.ldkv;
  const T *qg = pb.qg, *kg = pb.kg, *vg = pb.vg;

  // Tile j lives in stage j % kStages: full[] completes when warpgroup 1's copies of the tile
  // landed (128 cp.async arrivals), empty[] when warpgroup 0 is done with it (128 arrivals).
  // Warpgroup 1 loads tile j + kStages into the stage as soon as both are done with tile j;
  // nothing else ties the two warpgroups, so one's softmax overlaps the other's MMAs. Warpgroup 0
  // waits for full[] even for a tile it skips: its arrival on empty[] then never runs a phase
  // ahead of warpgroup 1's wait on it.
  if (tid == 0) {
    for (int b = 0; b < kStages; ++b) mbar_init(full0 + 8 * b, 128), mbar_init(empty0 + 8 * b, 128);
  }
  __syncthreads();
  auto load_kv = [&](int j) {  // warpgroup 1: tile j into stage j % kStages
    const int64_t k0 = static_cast<int64_t>(j) * kBc;
    const int valid = static_cast<int>(min64(kBc, kv_end - k0));
    load_rows<HD, kBc>(sK + (j % kStages) * kTile, kg + k0 * ldkv, ldkv, valid, 0, wtid);
    load_rows<HD, kBc>(sV + (j % kStages) * kTile, vg + k0 * ldkv, ldkv, valid, 0, wtid);
    mbar_arrive_cp_async(full0 + 8 * (j % kStages));
  };
  // Each warpgroup loads its own 64 query rows (rows 64 wg .. of the Q tile).
  load_rows<HD, 64>(sQ, qg, ldq, q_rows, 64 * wg, wtid);
  cp_async_commit();
  if (wg == 1) {
    load_kv(0);
    for (int j = 1; j < min(n_tiles, kStages); ++j) load_kv(j);
    cp_async_commit();
    cp_async_wait<1>();  // this thread's Q rows (the tile groups may still be in flight)
  } else {
    cp_async_wait<0>();
  }
  fence_proxy_async();
  warpgroup_sync(wg);

  float o[HD / 2];
#pragma unroll
  for (int i = 0; i < HD / 2; ++i) o[i] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  const int64_t qpos_wg = pos0 + i0 + wg * 64;  // first query position of this warpgroup
  // This thread's two rows: r = 0 -> 16 wq + g, r = 1 -> +8 (g = lane / 4, t = lane % 4).
  const int64_t qpos_r0 = qpos_wg + wq * 16 + lane / 4;
  const uint32_t q_addr = smem_u32(sQ) + wg * 64 * 128;  // rows 64 wg .. of every column block

  // The scores of one tile: causal mask (only on tiles reaching past this warpgroup's first
  // query position: element (i, e) holds key kbase + 8i + 2t + (e & 1) of row r0 + 8 (e >> 1),
  // masked when 8i + (e & 1) > rel + 8 (e >> 1) -- one compare with a constant per element; rel is
  // clamped to [-16, 256], which keeps every comparison's outcome), then the online softmax in the
  // log2 domain (every row sees key 0 in tile 0, so m_run is finite from then on): sc becomes the
  // unnormalized probabilities, l_run and m_run are updated, alpha is o's rescale factor per row.
  // It reads neither o nor p, so it can run while a P V wgmma still uses them.
  auto softmax_scores = [&](float(&sc)[64], int64_t kbase, float(&alpha)[2]) {
    if (kbase + kBc - 1 > qpos_wg) {
      const int rel = static_cast<int>(min64(max64(qpos_r0 - kbase - (lane % 4) * 2, -16), 256));
#pragma unroll
      for (int i = 0; i < 16; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (i * 8 + (e & 1) > rel + (e >> 1) * 8) sc[4 * i + e] = -INFINITY;
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int i = 0; i < 16; ++i) mx = fmaxf(mx, fmaxf(sc[4 * i + 2 * r], sc[4 * i + 2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m_run[r], mx * scale_log2);
      alpha[r] = fast_exp2(m_run[r] - m_new);
      float sum = 0.0f;
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        sc[4 * i + 2 * r] = fast_exp2(fmaf(sc[4 * i + 2 * r], scale_log2, -m_new));
        sc[4 * i + 2 * r + 1] = fast_exp2(fmaf(sc[4 * i + 2 * r + 1], scale_log2, -m_new));
        sum += sc[4 * i + 2 * r] + sc[4 * i + 2 * r + 1];
      }
      l_run[r] = l_run[r] * alpha[r] + sum;
      m_run[r] = m_new;
    }
  };
  // o *= alpha (per row), and P as the A fragments of 8 key steps (the accumulators of 8-key
  // blocks 2kc, 2kc+1) rounded to T.
  auto rescale_pack = [&](const float(&sc)[64], const float(&alpha)[2], uint32_t(&p)[kBc / 16][4]) {
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int i = 0; i < HD / 8; ++i) {
        o[4 * i + 2 * r] *= alpha[r];
        o[4 * i + 2 * r + 1] *= alpha[r];
      }
#pragma unroll
    for (int kc = 0; kc < kBc / 16; ++kc) {
      p[kc][0] = pack2<T>(sc[8 * kc + 0], sc[8 * kc + 1]);
      p[kc][1] = pack2<T>(sc[8 * kc + 2], sc[8 * kc + 3]);
      p[kc][2] = pack2<T>(sc[8 * kc + 4], sc[8 * kc + 5]);
      p[kc][3] = pack2<T>(sc[8 * kc + 6], sc[8 * kc + 7]);
    }
  };
  // Tile jr's stage is no longer read by this warpgroup: warpgroup 0 frees it, warpgroup 1 waits
  // until warpgroup 0 did and loads tile jr + kStages into it.
  auto release = [&](int jr) {
    const int b = jr % kStages;
    if (wg == 0) {
      mbar_arrive(empty0 + 8 * b);
    } else if (jr + kStages < n_tiles) {
      mbar_wait(empty0 + 8 * b, (jr / kStages) & 1);
      load_kv(jr + kStages);
    }
  };

  if constexpr (!OVL) {
    // Serial schedule: per tile S = Q K^T, wait, softmax, O += P V, wait.
    for (int j = 0; j < n_tiles; ++j) {
      const int buf = j % kStages;
      mbar_wait(full0 + 8 * buf, (j / kStages) & 1);
      // Keys of this tile all lie past the warpgroup's last query row: every score would be
      // masked (the running max and sum unchanged), so the warpgroup skips it.
      const int64_t kbase = static_cast<int64_t>(j) * kBc;
      if (kbase <= qpos_wg + 63) {
        fence_proxy_async();
        float sc[64];
        wgmma_fence();
        mma_s<T, HD>(sc, q_addr, smem_u32(sK + buf * kTile));
        wgmma_commit();
        wgmma_wait<0>();
        fence_regs(sc);
        uint32_t p[kBc / 16][4];
        float alpha[2];
        softmax_scores(sc, kbase, alpha);
        rescale_pack(sc, alpha, p);
        fence_regs(o);
        wgmma_fence();
        mma_o<T, HD>(o, p, smem_u32(sV + buf * kTile));
        wgmma_commit();
        wgmma_wait<0>();
        fence_regs(o);
      }
      release(j);
    }
  } else {
    // Overlapped schedule (FlashAttention-3's intra-warpgroup overlap with one score buffer):
    // S = Q K^T of tile j and O += P V of tile j - 1 are issued back to back as two groups; the
    // mask, max and exp of tile j run once S is done, under P V; then o is rescaled and P of
    // tile j packed, and tile j - 1's stage is freed. Tile 0 is never skipped (every row sees key
    // 0) and the skipped tiles are a suffix, so the first and last tiles are peeled: no wgmma sits
    // under a condition (ptxas serializes the wgmma of a kernel where one does).
    uint32_t p[kBc / 16][4];
    auto wait_tile_issue_s = [&](float(&sc)[64], int j) {
      const int buf = j % kStages;
      mbar_wait(full0 + 8 * buf, (j / kStages) & 1);
      fence_proxy_async();
      wgmma_fence();
      mma_s<T, HD>(sc, q_addr, smem_u32(sK + buf * kTile));
    };
    {
      float sc[64];
      wait_tile_issue_s(sc, 0);
      wgmma_commit();
      wgmma_wait<0>();
      fence_regs(sc);
      float alpha[2];
      softmax_scores(sc, 0, alpha);
      rescale_pack(sc, alpha, p);
    }
    int j = 1;
    for (; j < n_tiles && static_cast<int64_t>(j) * kBc <= qpos_wg + 63; ++j) {
      float sc[64];
      fence_regs(o);
      wait_tile_issue_s(sc, j);  // wgmma_fence included
      wgmma_commit();
      mma_o<T, HD>(o, p, smem_u32(sV + ((j - 1) % kStages) * kTile));
      wgmma_commit();
      wgmma_wait<1>();  // S done; P V of tile j - 1 runs under the mask, max and exp
      fence_regs(sc);
      float alpha[2];
      softmax_scores(sc, static_cast<int64_t>(j) * kBc, alpha);
      wgmma_wait<0>();
      fence_regs(o);
      release(j - 1);
      rescale_pack(sc, alpha, p);
    }
    fence_regs(o);
    wgmma_fence();
    mma_o<T, HD>(o, p, smem_u32(sV + ((j - 1) % kStages) * kTile));
    wgmma_commit();
    wgmma_wait<0>();
    fence_regs(o);
    release(j - 1);
    for (; j < n_tiles; ++j) {  // past this warpgroup's last row (warpgroup 0 only)
      mbar_wait(full0 + 8 * (j % kStages), (j / kStages) & 1);
      release(j);
    }
  }

  // O / l, rounded once to T; padding rows (i >= L) are not stored.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = l_run[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = 1.0f / l;
    const int row = wg * 64 + wq * 16 + lane / 4 + r * 8;
    if (row >= q_rows) continue;
    T* orow = out + (s * L + i0 + row) * ldo + static_cast<int64_t>(h) * HD + (lane % 4) * 2;
#pragma unroll
    for (int i = 0; i < HD / 8; ++i)
      *reinterpret_cast<uint32_t*>(orow + i * 8) =
          pack2<T>(o[4 * i + 2 * r] * inv, o[4 * i + 2 * r + 1] * inv);
  }
#else
  __trap();  // launched only on sm_90 devices (launch_attention_prefill_sm90 checks)
#endif
}

template <class T, int HD>
Status launch_t(const void* q, int64_t ldq, const void* k_cache, const void* v_cache,
                int64_t max_ctx, int64_t S, int64_t L, int64_t pos0, int64_t H, int64_t KV,
                void* out, int64_t ldo, bool overlap, cudaStream_t stream) {
  if (overlap)
    return launch_prefill_kernel<prefill_sm90_kernel<T, HD, true>, T, HD>(
        Smem<HD, kStagesOf<true>>::kBytes, kBr, kThreads, q, ldq, k_cache, v_cache, max_ctx, S, L,
        pos0, H, KV, out, ldo, stream);
  return launch_prefill_kernel<prefill_sm90_kernel<T, HD, false>, T, HD>(
      Smem<HD, kStagesOf<false>>::kBytes, kBr, kThreads, q, ldq, k_cache, v_cache, max_ctx, S, L,
      pos0, H, KV, out, ldo, stream);
}

}  // namespace

bool attention_prefill_sm90_supports(int sm, int64_t hd) {
  return sm == 90 && (hd == 64 || hd == 128);
}

Status launch_attention_prefill_sm90(DType t, const void* q, int64_t ldq, const void* k_cache,
                                     const void* v_cache, int64_t max_ctx, int64_t S, int64_t L,
                                     int64_t pos0, int64_t H, int64_t KV, int64_t hd, void* out,
                                     int64_t ldo, bool overlap, cudaStream_t stream) {
  const bool bf16 = t == DType::kBF16;
  if (hd == 128)
    return bf16 ? launch_t<__nv_bfloat16, 128>(q, ldq, k_cache, v_cache, max_ctx, S, L, pos0, H, KV,
                                               out, ldo, overlap, stream)
                : launch_t<__half, 128>(q, ldq, k_cache, v_cache, max_ctx, S, L, pos0, H, KV, out,
                                        ldo, overlap, stream);
  return bf16 ? launch_t<__nv_bfloat16, 64>(q, ldq, k_cache, v_cache, max_ctx, S, L, pos0, H, KV,
                                            out, ldo, overlap, stream)
              : launch_t<__half, 64>(q, ldq, k_cache, v_cache, max_ctx, S, L, pos0, H, KV, out, ldo,
                                     overlap, stream);
}

}  // namespace slidesparse::cuda::kernels
