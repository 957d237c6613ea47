// Attention kernels (prefill and split-KV decode) against a CPU reference: fp32 copies of the
// T-rounded inputs, scores and softmax in double. Cache entries the kernel must not read (past
// the context, other slots, other columns of q) are NaN; output rows/columns it must not write
// are poisoned and checked unchanged.
//
// Tolerance (absolute, inputs q, k in [-2, 2], v in [-1, 1], so |out| <= 1): the kernel rounds
// P to T before P V (relative error <= u per term, <= u * max|v| in the normalized sum) and the
// output once (<= u * |out|); fp32 accumulation adds ~1e-6. With u = 2^-8 (bf16) / 2^-11 (fp16)
// the bound is 2u: tolerance 1e-2 for bf16, 2e-3 for fp16.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend_ops/gpu_test_util.h"
#include "cuda/kernels/attention.cuh"
#include "cuda/kernels/attention_prefill_sm90.cuh"
#include "cuda/kernels/fill_random.cuh"

namespace slidesparse {
namespace {

using namespace test;
namespace k = cuda::kernels;

uint16_t to_t(DType t, float v) {
  return t == DType::kF16 ? float_to_fp16(v) : float_to_bf16(v);
}
float from_t(DType t, uint16_t r) {
  return t == DType::kF16 ? fp16_to_float(r) : bf16_to_float(r);
}
uint16_t nan_t(DType t) {
  return t == DType::kF16 ? 0x7e00 : 0x7fc0;
}
double tol_for(DType t) {
  return t == DType::kF16 ? 2e-3 : 1e-2;
}
constexpr uint16_t kPoison = 0xABAB;  // written by poisoned(): must survive where not written

// A [rows, cols] matrix of T (raw bits and exact fp32 copy), NaN everywhere by default.
struct Mat {
  DType t;
  int64_t rows, cols;
  std::vector<uint16_t> raw;
  std::vector<float> f;
  Mat(DType t_, int64_t r, int64_t c)
      : t(t_), rows(r), cols(c), raw(r * c, nan_t(t_)), f(r * c, NAN) {}
  void set(int64_t i, int64_t j, float v) {
    raw[i * cols + j] = to_t(t, v);
    f[i * cols + j] = from_t(t, raw[i * cols + j]);
  }
  float at(int64_t i, int64_t j) const { return f[i * cols + j]; }
};

// out[hd] = softmax(q . k_j / sqrt(hd), j < n_keys) . v_j, double precision.
void ref_row(const float* q, const Mat& kc, const Mat& vc, int64_t row0, int64_t col0,
             int64_t n_keys, int64_t hd, double* out) {
  std::vector<double> s(n_keys);
  double mx = -INFINITY;
  for (int64_t j = 0; j < n_keys; ++j) {
    double d = 0;
    for (int64_t c = 0; c < hd; ++c) d += static_cast<double>(q[c]) * kc.at(row0 + j, col0 + c);
    s[j] = d / std::sqrt(static_cast<double>(hd));
    mx = std::max(mx, s[j]);
  }
  double sum = 0;
  for (auto& x : s) sum += (x = std::exp(x - mx));
  for (int64_t c = 0; c < hd; ++c) out[c] = 0;
  for (int64_t j = 0; j < n_keys; ++j)
    for (int64_t c = 0; c < hd; ++c) out[c] += s[j] / sum * vc.at(row0 + j, col0 + c);
}

struct Err {
  double max_abs = 0;
  int64_t bad = 0, poison_broken = 0;
};

// ---------------------------------------------------------------------------------------------
// Prefill

struct PrefillCase {
  DType t;
  int64_t hd, H, KV, S, L, pos0;
  k::PrefillKernel kernel = k::PrefillKernel::kAuto;
  std::string name() const {
    return std::string(dtype_name(t)) + " hd=" + std::to_string(hd) + " H=" + std::to_string(H) +
           " KV=" + std::to_string(KV) + " S=" + std::to_string(S) + " L=" + std::to_string(L) +
           " pos0=" + std::to_string(pos0) + " kernel=" + k::prefill_kernel_name(kernel);
  }
};

Err run_prefill(const PrefillCase& c, uint64_t seed) {
  const int64_t slots = c.S + 1;  // the last slot is never read
  const int64_t max_ctx = c.pos0 + c.L + 5;
  const int64_t ldq = (c.H + 2 * c.KV) * c.hd;  // q inside a fused qkv row; k/v columns are NaN
  const int64_t ldo = c.H * c.hd + 8;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u2(-2.0f, 2.0f), u1(-1.0f, 1.0f);
  Mat q(c.t, c.S * c.L, ldq), kc(c.t, slots * max_ctx, c.KV * c.hd),
      vc(c.t, slots * max_ctx, c.KV * c.hd);
  for (int64_t r = 0; r < c.S * c.L; ++r)
    for (int64_t j = 0; j < c.H * c.hd; ++j) q.set(r, j, u2(rng));
  for (int64_t s = 0; s < c.S; ++s)
    for (int64_t p = 0; p < c.pos0 + c.L; ++p)
      for (int64_t j = 0; j < c.KV * c.hd; ++j) {
        kc.set(s * max_ctx + p, j, u2(rng));
        vc.set(s * max_ctx + p, j, u1(rng));
      }
  auto dq = to_device(q.raw), dk = to_device(kc.raw), dv = to_device(vc.raw);
  const int64_t out_rows = c.S * c.L + 1;  // one extra row: must stay poisoned
  auto dout = poisoned(out_rows * ldo * 2);
  Status st =
      k::launch_attention_prefill(c.t, dq.get(), ldq, dk.get(), dv.get(), max_ctx, c.S, c.L, c.pos0,
                                  c.H, c.KV, c.hd, dout.get(), ldo, nullptr, c.kernel);
  EXPECT_TRUE(st.ok()) << st.to_string();
  auto out = to_host<uint16_t>(dout, out_rows * ldo);
  Err e;
  std::vector<double> ref(c.hd);
  for (int64_t s = 0; s < c.S; ++s)
    for (int64_t i = 0; i < c.L; ++i) {
      const int64_t row = s * c.L + i;
      for (int64_t h = 0; h < c.H; ++h) {
        ref_row(&q.f[row * ldq + h * c.hd], kc, vc, s * max_ctx, (h / (c.H / c.KV)) * c.hd,
                c.pos0 + i + 1, c.hd, ref.data());
        for (int64_t d = 0; d < c.hd; ++d) {
          const double got = from_t(c.t, out[row * ldo + h * c.hd + d]);
          const double err = std::fabs(got - ref[d]);
          if (!(err <= tol_for(c.t))) ++e.bad;
          if (std::isfinite(got)) e.max_abs = std::max(e.max_abs, err);
        }
      }
      for (int64_t j = c.H * c.hd; j < ldo; ++j) e.poison_broken += out[row * ldo + j] != kPoison;
    }
  for (int64_t j = 0; j < ldo; ++j) e.poison_broken += out[(out_rows - 1) * ldo + j] != kPoison;
  return e;
}

TEST(CudaAttention, PrefillMatchesReference) {
  SS_SKIP_WITHOUT_GPU();
  struct Heads {
    int64_t H, KV;
  };
  struct SL {
    int64_t S, L;
  };
  const Heads heads[] = {{4, 2}, {28, 4}, {5, 1}};
  const SL sls[] = {{1, 1}, {2, 7}, {3, 19}, {1, 128}, {2, 300}};
  uint64_t seed = 1000;
  double worst[2][2] = {{0, 0}, {0, 0}};  // [dtype][mma.sync, wgmma]
  int sm = 0;
  SS_ASSERT_OK(cuda::check_device(&sm));
  for (DType t : {DType::kBF16, DType::kF16})
    for (int64_t hd : {16, 32, 64, 128})
      for (const Heads& hk : heads) {
        if (hd == 32 && hk.H != 4) continue;  // hd 32: one head layout is enough
        for (const SL& sl : sls)
          for (int64_t pos0 : {int64_t{0}, int64_t{37}}) {
            // Every kernel the device runs: the wgmma one where it applies, and both CTA
            // shapes of the mma.sync one (alternating over the cases).
            const k::PrefillKernel mma = (pos0 == 0) == (sl.L % 2 == 0) ? k::PrefillKernel::kMma128
                                                                        : k::PrefillKernel::kMma64;
            for (k::PrefillKernel kern :
                 {mma, k::PrefillKernel::kWgmma, k::PrefillKernel::kWgmmaOverlap}) {
              if (kern != mma && !k::attention_prefill_sm90_supports(sm, hd)) continue;
              PrefillCase c{t, hd, hk.H, hk.KV, sl.S, sl.L, pos0, kern};
              SCOPED_TRACE(c.name());
              Err e = run_prefill(c, ++seed);
              EXPECT_EQ(e.bad, 0) << "max abs err " << e.max_abs << " tol " << tol_for(t);
              EXPECT_EQ(e.poison_broken, 0);
              double& w = worst[t == DType::kF16][kern != mma];
              w = std::max(w, e.max_abs);
            }
          }
      }
  std::printf(
      "prefill max abs err (mma.sync / wgmma): bf16 %.3g / %.3g (tol %.0e), f16 %.3g / %.3g "
      "(tol %.0e)\n",
      worst[0][0], worst[0][1], tol_for(DType::kBF16), worst[1][0], worst[1][1],
      tol_for(DType::kF16));
}

// A few cases, quick enough for compute-sanitizer.
TEST(CudaAttention, PrefillSmall) {
  SS_SKIP_WITHOUT_GPU();
  // kAuto takes the mma.sync kernel at these lengths (< 1024 keys); the wgmma cases force that
  // kernel's two schedules (sm_90), the 600-row ones with 5 key tiles per CTA, so every K / V
  // stage is refilled, and warpgroup 0 skips the last tile where pos0 = 37.
  const PrefillCase cases[] = {
      {DType::kBF16, 128, 5, 1, 2, 130, 37},
      {DType::kF16, 16, 4, 2, 3, 19, 0},
      {DType::kF16, 64, 28, 4, 1, 65, 64},
      {DType::kBF16, 128, 5, 1, 2, 130, 37, k::PrefillKernel::kMma128},
      {DType::kBF16, 128, 5, 1, 2, 130, 37, k::PrefillKernel::kWgmma},
      {DType::kF16, 64, 8, 2, 1, 600, 37, k::PrefillKernel::kWgmma},
      {DType::kBF16, 128, 5, 1, 2, 130, 37, k::PrefillKernel::kWgmmaOverlap},
      {DType::kF16, 64, 8, 2, 1, 600, 37, k::PrefillKernel::kWgmmaOverlap},
      {DType::kBF16, 128, 4, 2, 1, 600, 0, k::PrefillKernel::kWgmmaOverlap}};
  int sm = 0;
  SS_ASSERT_OK(cuda::check_device(&sm));
  for (const PrefillCase& c : cases) {
    if (k::prefill_kernel_is_wgmma(c.kernel) && !k::attention_prefill_sm90_supports(sm, c.hd))
      continue;
    SCOPED_TRACE(c.name());
    Err e = run_prefill(c, 7);
    EXPECT_EQ(e.bad, 0) << "max abs err " << e.max_abs;
    EXPECT_EQ(e.poison_broken, 0);
  }
}

// The wgmma kernel's two schedules issue the same operations on the same values in the same order
// per element (only the overlap of one tile's P V with the next tile's S and softmax differs):
// their outputs must be identical bytes.
TEST(CudaAttention, PrefillWgmmaSchedulesBitIdentical) {
  SS_SKIP_WITHOUT_GPU();
  int sm = 0;
  SS_ASSERT_OK(cuda::check_device(&sm));
  if (!k::attention_prefill_sm90_supports(sm, 128)) GTEST_SKIP() << "needs an sm_90 GPU";
  struct C {
    DType t;
    int64_t hd, H, KV, S, L, pos0;
  };
  for (const C& c : {C{DType::kBF16, 128, 8, 2, 2, 1100, 0}, C{DType::kF16, 128, 4, 1, 1, 700, 37},
                     C{DType::kBF16, 64, 6, 3, 3, 520, 300}, C{DType::kF16, 64, 2, 2, 1, 64, 1}}) {
    SCOPED_TRACE(std::string(dtype_name(c.t)) + " hd=" + std::to_string(c.hd) +
                 " L=" + std::to_string(c.L) + " pos0=" + std::to_string(c.pos0));
    const int64_t max_ctx = c.pos0 + c.L, ldq = c.H * c.hd, n_kv = c.S * max_ctx * c.KV * c.hd;
    cuda::DeviceBuffer dq, dk, dv, o1, o2;
    ASSERT_TRUE(dq.reserve(c.S * c.L * ldq * 2).ok());
    ASSERT_TRUE(dk.reserve(n_kv * 2).ok());
    ASSERT_TRUE(dv.reserve(n_kv * 2).ok());
    ASSERT_TRUE(o1.reserve(c.S * c.L * ldq * 2).ok());
    ASSERT_TRUE(o2.reserve(c.S * c.L * ldq * 2).ok());
    SS_ASSERT_OK(k::launch_fill_random(c.t, dq.get(), c.S * c.L * ldq, 11, nullptr));
    SS_ASSERT_OK(k::launch_fill_random(c.t, dk.get(), n_kv, 12, nullptr));
    SS_ASSERT_OK(k::launch_fill_random(c.t, dv.get(), n_kv, 13, nullptr));
    for (auto [out, kern] : {std::pair{&o1, k::PrefillKernel::kWgmma},
                             std::pair{&o2, k::PrefillKernel::kWgmmaOverlap}})
      SS_ASSERT_OK(k::launch_attention_prefill(c.t, dq.get(), ldq, dk.get(), dv.get(), max_ctx, c.S,
                                               c.L, c.pos0, c.H, c.KV, c.hd, out->get(), ldq,
                                               nullptr, kern));
    auto a = to_host<uint16_t>(o1, c.S * c.L * ldq), b = to_host<uint16_t>(o2, c.S * c.L * ldq);
    int64_t diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff += a[i] != b[i];
    EXPECT_EQ(diff, 0) << "of " << a.size() << " outputs";
  }
}

TEST(CudaAttention, PrefillRejectsBadArguments) {
  SS_SKIP_WITHOUT_GPU();
  cuda::DeviceBuffer buf;
  ASSERT_TRUE(buf.reserve(1 << 20).ok());
  void* p = buf.get();
  auto call = [&](DType t, int64_t ldq, int64_t max_ctx, int64_t L, int64_t pos0, int64_t H,
                  int64_t KV, int64_t hd, const void* q = nullptr) {
    return k::launch_attention_prefill(t, q ? q : p, ldq, p, p, max_ctx, 1, L, pos0, H, KV, hd, p,
                                       H * hd, nullptr);
  };
  EXPECT_TRUE(call(DType::kBF16, 256, 16, 8, 8, 4, 2, 64).ok());
  EXPECT_EQ(call(DType::kF32, 256, 16, 8, 0, 4, 2, 64).code(), StatusCode::kUnsupported);
  EXPECT_EQ(call(DType::kBF16, 384, 16, 8, 0, 4, 2, 96).code(), StatusCode::kUnsupported);
  EXPECT_EQ(call(DType::kBF16, 256, 16, 8, 0, 4, 3, 64).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(call(DType::kBF16, 256, 16, 8, 9, 4, 2, 64).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(call(DType::kBF16, 100, 16, 8, 0, 4, 2, 64).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(call(DType::kBF16, 260, 16, 8, 0, 4, 2, 64).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(call(DType::kBF16, 256, 16, 8, 0, 4, 2, 64, static_cast<char*>(p) + 2).code(),
            StatusCode::kInvalidArgument);
  // The wgmma kernel where it cannot run (head dim 32; any head dim off sm_90): unsupported.
  for (k::PrefillKernel kern : {k::PrefillKernel::kWgmma, k::PrefillKernel::kWgmmaOverlap})
    EXPECT_EQ(k::launch_attention_prefill(DType::kBF16, p, 128, p, p, 16, 1, 8, 8, 4, 2, 32, p, 128,
                                          nullptr, kern)
                  .code(),
              StatusCode::kUnsupported);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

// ---------------------------------------------------------------------------------------------
// Decode

struct DecodeCase {
  DType t;
  int64_t hd, H, KV, max_ctx;
  std::vector<int32_t> kv_len;
  std::string name() const {
    return std::string(dtype_name(t)) + " hd=" + std::to_string(hd) + " H=" + std::to_string(H) +
           " KV=" + std::to_string(KV) + " B=" + std::to_string(kv_len.size()) +
           " max_ctx=" + std::to_string(max_ctx);
  }
};

struct DecodeData {
  Mat q, kc, vc;
  int64_t ldq, ldo;
};

DecodeData make_decode(const DecodeCase& c, uint64_t seed) {
  const int64_t B = static_cast<int64_t>(c.kv_len.size());
  const int64_t ldq = (c.H + 2 * c.KV) * c.hd;
  DecodeData d{Mat(c.t, B, ldq), Mat(c.t, (B + 1) * c.max_ctx, c.KV * c.hd),
               Mat(c.t, (B + 1) * c.max_ctx, c.KV * c.hd), ldq, c.H * c.hd + 8};
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u2(-2.0f, 2.0f), u1(-1.0f, 1.0f);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t j = 0; j < c.H * c.hd; ++j) d.q.set(b, j, u2(rng));
    for (int64_t p = 0; p < c.kv_len[b]; ++p)
      for (int64_t j = 0; j < c.KV * c.hd; ++j) {
        d.kc.set(b * c.max_ctx + p, j, u2(rng));
        d.vc.set(b * c.max_ctx + p, j, u1(rng));
      }
  }
  return d;
}

// Checks out (B + 1 rows of ldo, the last one poisoned) against the reference.
Err check_decode(const DecodeCase& c, const DecodeData& d, const std::vector<uint16_t>& out) {
  const int64_t B = static_cast<int64_t>(c.kv_len.size());
  Err e;
  std::vector<double> ref(c.hd);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < c.H; ++h) {
      ref_row(&d.q.f[b * d.ldq + h * c.hd], d.kc, d.vc, b * c.max_ctx, (h / (c.H / c.KV)) * c.hd,
              c.kv_len[b], c.hd, ref.data());
      for (int64_t j = 0; j < c.hd; ++j) {
        const double got = from_t(c.t, out[b * d.ldo + h * c.hd + j]);
        const double err = std::fabs(got - ref[j]);
        if (!(err <= tol_for(c.t))) ++e.bad;
        if (std::isfinite(got)) e.max_abs = std::max(e.max_abs, err);
      }
    }
    for (int64_t j = c.H * c.hd; j < d.ldo; ++j) e.poison_broken += out[b * d.ldo + j] != kPoison;
  }
  for (int64_t j = 0; j < d.ldo; ++j) e.poison_broken += out[B * d.ldo + j] != kPoison;
  return e;
}

Err run_decode(const DecodeCase& c, uint64_t seed) {
  const int64_t B = static_cast<int64_t>(c.kv_len.size());
  DecodeData d = make_decode(c, seed);
  auto dq = to_device(d.q.raw), dk = to_device(d.kc.raw), dv = to_device(d.vc.raw);
  auto dlen = to_device(c.kv_len);
  auto dout = poisoned((B + 1) * d.ldo * 2);
  const size_t ws_bytes = k::attention_decode_workspace_bytes(B, c.H, c.hd, c.max_ctx);
  auto ws = poisoned(ws_bytes, 0xFF);  // NaN floats: the combine must read only written entries
  Status st = k::launch_attention_decode(c.t, dq.get(), d.ldq, dk.get(), dv.get(), c.max_ctx,
                                         dlen.as<int32_t>(), B, c.H, c.KV, c.hd, dout.get(), d.ldo,
                                         ws.get(), ws_bytes, nullptr);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return check_decode(c, d, to_host<uint16_t>(dout, (B + 1) * d.ldo));
}

TEST(CudaAttention, DecodeMatchesReference) {
  SS_SKIP_WITHOUT_GPU();
  struct Heads {
    int64_t H, KV;
  };
  const Heads heads[] = {{4, 2}, {28, 4}, {5, 1}, {9, 3}, {36, 2}};  // rep 2, 7, 5, 3, 18
  uint64_t seed = 2000;
  double worst[2] = {0, 0};
  for (DType t : {DType::kBF16, DType::kF16})
    for (int64_t hd : {16, 32, 64, 128})
      for (const Heads& hk : heads) {
        if (hd == 32 && hk.H != 4) continue;
        // B = 1 (many small splits) and B = 5 with mixed context lengths.
        for (const std::vector<int32_t>& lens :
             {std::vector<int32_t>{4096}, std::vector<int32_t>{1, 17, 300, 4096, 4104}}) {
          DecodeCase c{t, hd, hk.H, hk.KV, 4104, lens};
          SCOPED_TRACE(c.name());
          Err e = run_decode(c, ++seed);
          EXPECT_EQ(e.bad, 0) << "max abs err " << e.max_abs << " tol " << tol_for(t);
          EXPECT_EQ(e.poison_broken, 0);
          double& w = worst[t == DType::kF16];
          w = std::max(w, e.max_abs);
        }
      }
  std::printf("decode max abs err: bf16 %.3g (tol %.0e), f16 %.3g (tol %.0e)\n", worst[0],
              tol_for(DType::kBF16), worst[1], tol_for(DType::kF16));
}

TEST(CudaAttention, DecodeLargeBatch) {
  SS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(77);
  std::vector<int32_t> lens(512);
  for (auto& l : lens) l = 1 + static_cast<int32_t>(rng() % 4104);
  lens[3] = 4104;
  lens[100] = 1;
  DecodeCase c{DType::kBF16, 64, 8, 2, 4104, lens};
  Err e = run_decode(c, 31);
  EXPECT_EQ(e.bad, 0) << "max abs err " << e.max_abs;
  EXPECT_EQ(e.poison_broken, 0);
}

// The decode launch captured once in a CUDA graph stays correct when kv_len grows between replays.
TEST(CudaAttention, DecodeGraphReplayAsContextGrows) {
  SS_SKIP_WITHOUT_GPU();
  DecodeCase c{DType::kBF16, 128, 28, 4, 1100, {1, 64, 65, 700}};
  const int64_t B = static_cast<int64_t>(c.kv_len.size());
  std::vector<int32_t> full(B, static_cast<int32_t>(c.max_ctx));
  DecodeCase cf = c;
  cf.kv_len = full;
  DecodeData d = make_decode(cf, 5);  // whole cache valid; kv_len decides what is attended
  auto dq = to_device(d.q.raw), dk = to_device(d.kc.raw), dv = to_device(d.vc.raw);
  auto dlen = to_device(c.kv_len);
  auto dout = poisoned((B + 1) * d.ldo * 2);
  const size_t ws_bytes = k::attention_decode_workspace_bytes(B, c.H, c.hd, c.max_ctx);
  auto ws = poisoned(ws_bytes, 0xFF);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  cudaGraph_t graph;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  Status st = k::launch_attention_decode(c.t, dq.get(), d.ldq, dk.get(), dv.get(), c.max_ctx,
                                         dlen.as<int32_t>(), B, c.H, c.KV, c.hd, dout.get(), d.ldo,
                                         ws.get(), ws_bytes, stream);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_TRUE(st.ok()) << st.to_string();
  cudaGraphExec_t exec;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int step = 0; step < 4; ++step) {
    for (auto& l : c.kv_len) l = std::min<int32_t>(l + 1 + step * 130, c.max_ctx);
    cudaMemcpy(dlen.get(), c.kv_len.data(), B * 4, cudaMemcpyHostToDevice);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    SCOPED_TRACE("step " + std::to_string(step));
    Err e = check_decode(c, d, to_host<uint16_t>(dout, (B + 1) * d.ldo));
    EXPECT_EQ(e.bad, 0) << "max abs err " << e.max_abs;
    EXPECT_EQ(e.poison_broken, 0);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

TEST(CudaAttention, DecodeRejectsBadArguments) {
  SS_SKIP_WITHOUT_GPU();
  cuda::DeviceBuffer buf;
  ASSERT_TRUE(buf.reserve(1 << 20).ok());
  void* p = buf.get();
  const int32_t* len = buf.as<int32_t>();
  // B = 4, max_ctx = 4096 needs split workspace; none given.
  EXPECT_EQ(k::launch_attention_decode(DType::kBF16, p, 512, p, p, 4096, len, 4, 4, 2, 128, p, 512,
                                       nullptr, 0, nullptr)
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(k::launch_attention_decode(DType::kBF16, p, 512, p, p, 4096, nullptr, 4, 4, 2, 128, p,
                                       512, p, 1 << 20, nullptr)
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(k::launch_attention_decode(DType::kI8, p, 512, p, p, 4096, len, 4, 4, 2, 128, p, 512, p,
                                       1 << 20, nullptr)
                .code(),
            StatusCode::kUnsupported);
  EXPECT_EQ(k::launch_attention_decode(DType::kF16, p, 512, p, p, 4096, len, 4, 6, 4, 128, p, 768,
                                       p, 1 << 20, nullptr)
                .code(),
            StatusCode::kInvalidArgument);
  // The workspace for the largest B serves every smaller B.
  for (int64_t B : {1, 2, 3, 17, 100, 511, 512})
    EXPECT_GE(k::attention_decode_workspace_bytes(512, 28, 128, 4096),
              k::attention_decode_workspace_bytes(B, 28, 128, 4096));
}

// ---------------------------------------------------------------------------------------------
// Performance (run with --gtest_also_run_disabled_tests). Median of 20 timed runs after 3
// warm-ups, CUDA events; decode with L2 flushed (256 MiB memset) before each run.

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

TEST(CudaAttention, DISABLED_Perf) {
  SS_SKIP_WITHOUT_GPU();
  const DType t = DType::kBF16;
  const int64_t H = 28, KV = 4, hd = 128;  // Qwen2.5-7B
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  cuda::DeviceBuffer flush;
  ASSERT_TRUE(flush.reserve(256 << 20).ok());
  // Median of 20 timed runs after 3 warm-ups; flush_l2: a 256 MiB memset before each timed run.
  auto time_ms = [&](const std::function<Status()>& run, bool flush_l2) {
    std::vector<float> ms;
    for (int i = 0; i < 23; ++i) {
      if (flush_l2) cudaMemsetAsync(flush.get(), i, 256 << 20);
      cudaEventRecord(e0);
      EXPECT_TRUE(run().ok());
      cudaEventRecord(e1);
      cudaEventSynchronize(e1);
      float x = 0;
      cudaEventElapsedTime(&x, e0, e1);
      if (i >= 3) ms.push_back(x);
    }
    return median(ms);
  };

  struct P {
    int64_t S, L;
  };
  for (P pc : {P{16, 1024}, P{8, 2048}, P{4, 4096}, P{1, 16384}}) {
    const int64_t ldq = H * hd, max_ctx = pc.L;
    cuda::DeviceBuffer dq, dk, dv, dout;
    ASSERT_TRUE(dq.reserve(pc.S * pc.L * ldq * 2).ok());
    ASSERT_TRUE(dk.reserve(pc.S * max_ctx * KV * hd * 2).ok());
    ASSERT_TRUE(dv.reserve(pc.S * max_ctx * KV * hd * 2).ok());
    ASSERT_TRUE(dout.reserve(pc.S * pc.L * ldq * 2).ok());
    SS_ASSERT_OK(k::launch_fill_random(t, dq.get(), pc.S * pc.L * ldq, 1, nullptr));
    SS_ASSERT_OK(k::launch_fill_random(t, dk.get(), pc.S * max_ctx * KV * hd, 2, nullptr));
    SS_ASSERT_OK(k::launch_fill_random(t, dv.get(), pc.S * max_ctx * KV * hd, 3, nullptr));
    int sm = 0;
    SS_ASSERT_OK(cuda::check_device(&sm));
    for (k::PrefillKernel kern : {k::PrefillKernel::kWgmma, k::PrefillKernel::kWgmmaOverlap,
                                  k::PrefillKernel::kMma128, k::PrefillKernel::kMma64}) {
      if (k::prefill_kernel_is_wgmma(kern) && !k::attention_prefill_sm90_supports(sm, hd)) continue;
      auto run = [&] {
        return k::launch_attention_prefill(t, dq.get(), ldq, dk.get(), dv.get(), max_ctx, pc.S,
                                           pc.L, 0, H, KV, hd, dout.get(), ldq, nullptr, kern);
      };
      SS_ASSERT_OK(run());
      // Validate 48 sampled (sequence, row, head) outputs against the reference.
      double max_err = 0;
      {
        auto hq = to_host<uint16_t>(dq, pc.S * pc.L * ldq);
        auto hk = to_host<uint16_t>(dk, pc.S * max_ctx * KV * hd);
        auto hv = to_host<uint16_t>(dv, pc.S * max_ctx * KV * hd);
        auto ho = to_host<uint16_t>(dout, pc.S * pc.L * ldq);
        Mat mk(t, pc.S * max_ctx, KV * hd), mv(t, pc.S * max_ctx, KV * hd);
        for (size_t i = 0; i < hk.size(); ++i) {
          mk.raw[i] = hk[i], mk.f[i] = from_t(t, hk[i]);
          mv.raw[i] = hv[i], mv.f[i] = from_t(t, hv[i]);
        }
        std::mt19937_64 rng(9);
        std::vector<double> ref(hd);
        std::vector<float> qrow(hd);
        for (int n = 0; n < 48; ++n) {
          const int64_t s = rng() % pc.S, i = (n < 4) ? pc.L - 1 - n : rng() % pc.L, h = rng() % H;
          const int64_t row = s * pc.L + i;
          for (int64_t c = 0; c < hd; ++c) qrow[c] = from_t(t, hq[row * ldq + h * hd + c]);
          ref_row(qrow.data(), mk, mv, s * max_ctx, (h / (H / KV)) * hd, i + 1, hd, ref.data());
          for (int64_t c = 0; c < hd; ++c)
            max_err = std::max(max_err, std::fabs(from_t(t, ho[row * ldq + h * hd + c]) - ref[c]));
        }
        EXPECT_LE(max_err, tol_for(t));
      }
      const double flops = 4.0 * pc.S * H * hd * (pc.L * (pc.L + 1) / 2.0);
      const float m = time_ms(run, false);
      std::printf(
          "prefill bf16 H=28 KV=4 hd=128 S=%lld L=%lld %s: %.3f ms, %.1f TFLOPS (causal, max "
          "err %.2g)\n",
          static_cast<long long>(pc.S), static_cast<long long>(pc.L), k::prefill_kernel_name(kern),
          m, flops / (m * 1e-3) / 1e12, max_err);
    }
  }

  const int64_t max_ctx = 4096;
  for (int64_t B : {1, 64, 512}) {
    const int64_t ldq = H * hd;
    cuda::DeviceBuffer dq, dk, dv, dout, dlen, ws;
    const int64_t cache = B * max_ctx * KV * hd;
    ASSERT_TRUE(dq.reserve(B * ldq * 2).ok());
    ASSERT_TRUE(dk.reserve(cache * 2).ok());
    ASSERT_TRUE(dv.reserve(cache * 2).ok());
    ASSERT_TRUE(dout.reserve(B * ldq * 2).ok());
    ASSERT_TRUE(dlen.reserve(B * 4).ok());
    const size_t ws_bytes = k::attention_decode_workspace_bytes(B, H, hd, max_ctx);
    ASSERT_TRUE(ws.reserve(std::max<size_t>(ws_bytes, 16)).ok());
    SS_ASSERT_OK(k::launch_fill_random(t, dq.get(), B * ldq, 4, nullptr));
    SS_ASSERT_OK(k::launch_fill_random(t, dk.get(), cache, 5, nullptr));
    SS_ASSERT_OK(k::launch_fill_random(t, dv.get(), cache, 6, nullptr));
    for (int32_t kv : {144, 4096}) {
      std::vector<int32_t> lens(B, kv);
      cudaMemcpy(dlen.get(), lens.data(), B * 4, cudaMemcpyHostToDevice);
      auto run = [&] {
        return k::launch_attention_decode(t, dq.get(), ldq, dk.get(), dv.get(), max_ctx,
                                          dlen.as<int32_t>(), B, H, KV, hd, dout.get(), ldq,
                                          ws.get(), ws_bytes, nullptr);
      };
      SS_ASSERT_OK(run());
      {  // validate sequence 0 and B-1
        auto hq = to_host<uint16_t>(dq, B * ldq);
        auto ho = to_host<uint16_t>(dout, B * ldq);
        double max_err = 0;
        for (int64_t b : {int64_t{0}, B - 1}) {
          Mat mk(t, kv, KV * hd), mv(t, kv, KV * hd);
          cudaMemcpy(mk.raw.data(), dk.as<uint16_t>() + b * max_ctx * KV * hd, kv * KV * hd * 2,
                     cudaMemcpyDeviceToHost);
          cudaMemcpy(mv.raw.data(), dv.as<uint16_t>() + b * max_ctx * KV * hd, kv * KV * hd * 2,
                     cudaMemcpyDeviceToHost);
          for (size_t i = 0; i < mk.raw.size(); ++i)
            mk.f[i] = from_t(t, mk.raw[i]), mv.f[i] = from_t(t, mv.raw[i]);
          std::vector<double> ref(hd);
          std::vector<float> qrow(hd);
          for (int64_t h = 0; h < H; ++h) {
            for (int64_t c = 0; c < hd; ++c) qrow[c] = from_t(t, hq[b * ldq + h * hd + c]);
            ref_row(qrow.data(), mk, mv, 0, (h / (H / KV)) * hd, kv, hd, ref.data());
            for (int64_t c = 0; c < hd; ++c)
              max_err = std::max(max_err, std::fabs(from_t(t, ho[b * ldq + h * hd + c]) - ref[c]));
          }
        }
        EXPECT_LE(max_err, tol_for(t));
      }
      const float m = time_ms(run, true);
      const double bytes = 2.0 * B * kv * KV * hd * 2;
      std::printf("decode bf16 H=28 KV=4 hd=128 B=%lld kv_len=%d: %.1f us, K+V %.0f GB/s\n",
                  static_cast<long long>(B), kv, m * 1e3, bytes / (m * 1e-3) / 1e9);
    }
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
}

}  // namespace
}  // namespace slidesparse
