// The CUDA engine's non-GEMM kernels against plain CPU references written here with the same
// rounding rules (HF's order of roundings; the only shared code is exact_math.h, whose exp is
// itself checked against fp64 below): embedding, residual add + RMSNorm, RoPE + KV-cache write,
// SwiGLU, argmax, and the fused prologues that write a linear layer's InputSlot. Every comparison
// is bit-exact except the fast SwiGLU's values (SiluMath::kFast: within 1 ulp of T for silu, 2 for
// the product; the codes made from them are again bit-exact). DISABLED_Bandwidth prints GB/s at
// engine sizes (--gtest_also_run_disabled_tests).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend_ops/gpu_test_util.h"
#include "cuda/kernels/add_rmsnorm_prologue.cuh"
#include "cuda/kernels/argmax.cuh"
#include "cuda/kernels/embedding.cuh"
#include "cuda/kernels/exact_math.h"
#include "cuda/kernels/fill_random.cuh"
#include "cuda/kernels/lift.cuh"
#include "cuda/kernels/quant.cuh"
#include "cuda/kernels/quant_lift.cuh"
#include "cuda/kernels/rmsnorm.cuh"
#include "cuda/kernels/rope_kv.cuh"
#include "cuda/kernels/silu_mul.cuh"
#include "cuda/kernels/silu_mul_prologue.cuh"
#include "slidesparse/linear.h"
#include "slidesparse/nm_tensor.h"
#include "slidesparse/quant.h"
#include "slidesparse/slide.h"

namespace slidesparse {
namespace {

using cuda::round_up;
using namespace test;
namespace k = cuda::kernels;
namespace ex = cuda::exact;

// ---- scalar helpers of the references --------------------------------------------------------
float val(DType t, uint16_t r) {
  return t == DType::kF16 ? fp16_to_float(r) : bf16_to_float(r);
}
uint16_t rnd(DType t, float f) {
  return t == DType::kF16 ? float_to_fp16(f) : float_to_bf16(f);
}
float rt(DType t, float f) {  // round to T and back
  return val(t, rnd(t, f));
}
std::string tname(DType t) {
  return dtype_name(t);
}

// Compares 16-bit outputs exactly; on failure names the first mismatch and the count.
void expect_same16(const std::vector<uint16_t>& got, const std::vector<uint16_t>& want,
                   int64_t row_len, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (got[i] != want[i] && bad++ == 0) first = i;
  ASSERT_EQ(bad, 0u) << what << ": " << bad << " of " << want.size() << " differ; first at row "
                     << first / row_len << " col " << first % row_len << ": got 0x" << std::hex
                     << got[first] << " want 0x" << want[first];
}
void expect_same8(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want,
                  int64_t row_len, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (got[i] != want[i] && bad++ == 0) first = i;
  ASSERT_EQ(bad, 0u) << what << ": " << bad << " of " << want.size() << " differ; first at row "
                     << first / row_len << " col " << first % row_len << ": got " << int{got[first]}
                     << " want " << int{want[first]};
}

// Compares 16-bit floats of type t within max_ulp units in the last place of t (-0 == +0; NaN only
// against NaN, inf only against the same inf) and at most max_frac of them different at all;
// prints how many differ (the stated tolerance of the fast SwiGLU).
void expect_close16(DType t, const std::vector<uint16_t>& got, const std::vector<uint16_t>& want,
                    int64_t row_len, int64_t max_ulp, double max_frac, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  auto key = [](uint16_t v) -> int64_t {  // monotonic in the value for finite v
    return (v & 0x8000) ? -static_cast<int64_t>(v & 0x7FFF) : static_cast<int64_t>(v);
  };
  size_t diff = 0, bad = 0, first = 0;
  int64_t worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (got[i] == want[i]) continue;
    const float g = val(t, got[i]), w = val(t, want[i]);
    bool ok = std::isnan(g) && std::isnan(w);
    if (std::isfinite(g) && std::isfinite(w)) {
      const int64_t d = std::llabs(key(got[i]) - key(want[i]));
      worst = std::max(worst, d);
      ok = d <= max_ulp;
      if (d == 0) continue;  // -0 vs +0
    }
    ++diff;
    if (!ok && bad++ == 0) first = i;
  }
  ASSERT_EQ(bad, 0u) << what << ": " << bad << " of " << want.size() << " beyond " << max_ulp
                     << " ulp; first at row " << first / row_len << " col " << first % row_len
                     << ": got 0x" << std::hex << got[first] << " want 0x" << want[first];
  EXPECT_LE(static_cast<double>(diff), max_frac * static_cast<double>(want.size()))
      << what << ": " << diff << " of " << want.size() << " differ";
  std::printf(
      "%s (%s): %zu of %zu differ from the reference (%.3f %%), max %lld ulp\n", what,
      dtype_name(t), diff, want.size(),
      100.0 * static_cast<double>(diff) / static_cast<double>(std::max<size_t>(1, want.size())),
      static_cast<long long>(worst));
}

const int64_t kRows[] = {1, 7, 19, 300};
const int64_t kCols[] = {64, 80, 111, 3584};

// ---- exp / silu: the shared scalar code against fp64 ------------------------------------------
TEST(EngineKernels, ExpF32WithinTwoUlpOfFp64) {
  // Every bf16 value in range plus a dense sweep; the error in fp32 ulps of the fp64 result.
  double worst = 0;
  auto check = [&](float x) {
    float got = ex::exp_f32(x);
    double want = std::exp(static_cast<double>(x));
    if (got == 0.0f) {  // flushed to zero by contract exactly for x < -86
      ASSERT_LT(x, -86.0f);
      return;
    }
    ASSERT_GE(x, -86.0f) << "got " << got;
    if (std::isinf(got)) {  // overflow only at (about) FLT_MAX
      ASSERT_GT(want, 3.40e38) << "x=" << x;
      return;
    }
    ASSERT_LT(want, 3.41e38) << "x=" << x << " got " << got;
    double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(want)) - 23);
    double e = std::fabs(got - want) / ulp;
    worst = std::max(worst, e);
    ASSERT_LE(e, 2.0) << "x=" << x << " got " << got << " want " << want;
  };
  for (uint32_t b = 0; b < 65536; ++b) {
    float x = bf16_to_float(static_cast<uint16_t>(b));
    if (std::isfinite(x) && std::fabs(x) < 100) check(x);
  }
  for (int i = 0; i <= 2000000; ++i) check(-100.0f + 200.0f * static_cast<float>(i) / 2e6f);
  for (float x = 88.0f; x < 89.0f; x = std::nextafter(x, 100.0f)) check(x);  // every float
  for (float x = -87.0f; x < -85.0f; x = std::nextafter(x, 0.0f)) check(x);
  EXPECT_TRUE(std::isnan(ex::exp_f32(NAN)));
  EXPECT_EQ(ex::silu_f32(-200.0f), -0.0f);
  EXPECT_EQ(ex::silu_f32(200.0f), 200.0f);
  std::printf("exp_f32: max error %.3f ulp vs fp64 exp\n", worst);
}

// ---- embedding ------------------------------------------------------------------------------
TEST(EngineKernels, EmbeddingBitExact) {
  SS_SKIP_WITHOUT_GPU();
  uint64_t seed = 10;
  for (DType t : {DType::kBF16, DType::kF16})
    for (int64_t C : kCols)
      for (int64_t M : kRows) {
        SCOPED_TRACE(tname(t) + " M=" + std::to_string(M) + " C=" + std::to_string(C));
        const int64_t vocab = 97;
        Acts tab = random_acts(t, vocab, C, ++seed);
        std::mt19937_64 rng(seed);
        std::vector<int32_t> ids(M);
        for (auto& i : ids) i = static_cast<int32_t>(rng() % vocab);
        if (M > 3) ids[2] = -1, ids[3] = static_cast<int32_t>(vocab);  // out of range: zero row
        auto dt = to_device(tab.raw);
        auto di = to_device(ids);
        auto dout = poisoned(M * C * 2);
        SS_ASSERT_OK(
            k::launch_embedding(t, dt.get(), vocab, C, di.as<int32_t>(), M, dout.get(), nullptr));
        std::vector<uint16_t> want(M * C, 0);
        for (int64_t m = 0; m < M; ++m)
          if (ids[m] >= 0 && ids[m] < vocab) std::copy_n(&tab.raw[ids[m] * C], C, &want[m * C]);
        expect_same16(to_host<uint16_t>(dout, M * C), want, C, "embedding");
      }
}

// ---- residual add + RMSNorm -----------------------------------------------------------------
// Inputs of one residual add + RMSNorm case: x [M, C] (scale 4), the delta d [M, C] (scale 2),
// the weight w [C] (scale 1.5), from seeds *seed + 1, + 2, + 3 (*seed advanced by 3).
struct NormInputs {
  Acts x, d, w;
};
NormInputs norm_inputs(DType t, int64_t M, int64_t C, uint64_t* seed) {
  NormInputs n;
  n.x = random_acts(t, M, C, ++*seed, 4.0f);
  n.d = random_acts(t, M, C, ++*seed, 2.0f);
  n.w = random_acts(t, 1, C, ++*seed, 1.5f);
  return n;
}

// CPU reference of rmsnorm.cuh: x = T(x + d); mean(x^2) as the fp32 rounding of the fp64 mean
// (the GPU sums in fp64 in another order: squares of 16-bit floats are exact in fp64, so the sum
// is order-independent to ~2^-50 relative, far below fp32 resolution); inv = 1/sqrt(mean + eps)
// (two IEEE ops); y = T(w * T(x * inv)).
void ref_add_rmsnorm(DType t, std::vector<uint16_t>& x, const std::vector<uint16_t>* d,
                     const std::vector<uint16_t>& w, float eps, int64_t M, int64_t C,
                     std::vector<uint16_t>* y) {
  y->assign(M * C, 0);
  for (int64_t m = 0; m < M; ++m) {
    double ss = 0;
    for (int64_t c = 0; c < C; ++c) {
      uint16_t& xv = x[m * C + c];
      if (d) xv = rnd(t, ex::fadd(val(t, xv), val(t, (*d)[m * C + c])));
      double v = val(t, xv);
      ss += v * v;
    }
    const float mean = static_cast<float>(ss / static_cast<double>(C));
    const float inv = ex::rms_inv(mean, eps);
    for (int64_t c = 0; c < C; ++c) {
      float n = rt(t, ex::fmul(val(t, x[m * C + c]), inv));
      (*y)[m * C + c] = rnd(t, ex::fmul(val(t, w[c]), n));
    }
  }
}

TEST(EngineKernels, AddRmsNormBitExact) {
  SS_SKIP_WITHOUT_GPU();
  uint64_t seed = 100;
  for (DType t : {DType::kBF16, DType::kF16})
    for (int64_t C : kCols)
      for (int64_t M : kRows)
        for (bool with_d : {true, false}) {
          SCOPED_TRACE(tname(t) + " M=" + std::to_string(M) + " C=" + std::to_string(C) +
                       (with_d ? " add" : " no-add"));
          const NormInputs in = norm_inputs(t, M, C, &seed);
          const Acts &x = in.x, &d = in.d, &w = in.w;
          const float eps = 1e-6f;
          auto dx = to_device(x.raw), dd = to_device(d.raw), dw = to_device(w.raw);
          auto dy = poisoned(M * C * 2);
          SS_ASSERT_OK(k::launch_add_rmsnorm(t, dx.get(), with_d ? dd.get() : nullptr, dw.get(),
                                             eps, dy.get(), M, C, nullptr));
          std::vector<uint16_t> xr = x.raw, yr;
          ref_add_rmsnorm(t, xr, with_d ? &d.raw : nullptr, w.raw, eps, M, C, &yr);
          expect_same16(to_host<uint16_t>(dx, M * C), xr, C, "residual x");
          expect_same16(to_host<uint16_t>(dy, M * C), yr, C, "rmsnorm y");
        }
}

// ---- RoPE + KV-cache write ------------------------------------------------------------------
struct RopeCase {
  int64_t M, H, KV, hd, ld_extra;
};

TEST(EngineKernels, RopeKvBitExact) {
  SS_SKIP_WITHOUT_GPU();
  // hd 16/64/128 (16-byte path), 24 and an odd row stride (scalar path); GQA 14:2, 8:2, 4:1.
  const RopeCase cases[] = {{1, 4, 4, 16, 0},   {7, 8, 2, 64, 8}, {19, 14, 2, 128, 0},
                            {300, 4, 1, 64, 0}, {5, 6, 2, 24, 0}, {19, 8, 2, 64, 3},
                            {7, 2, 1, 128, 0}};
  uint64_t seed = 300;
  for (DType t : {DType::kBF16, DType::kF16})
    for (const RopeCase& rc : cases) {
      SCOPED_TRACE(tname(t) + " M=" + std::to_string(rc.M) + " H=" + std::to_string(rc.H) +
                   " KV=" + std::to_string(rc.KV) + " hd=" + std::to_string(rc.hd) + " ld+" +
                   std::to_string(rc.ld_extra));
      const int64_t M = rc.M, H = rc.H, KV = rc.KV, hd = rc.hd, half = hd / 2;
      const int64_t ld = (H + 2 * KV) * hd + rc.ld_extra, kvw = KV * hd;
      const int64_t slots = 3, max_ctx = 128;
      Acts qkv = random_acts(t, M, ld, ++seed, 3.0f);
      std::vector<int32_t> pos(M), slot(M);
      for (int64_t m = 0; m < M; ++m) {  // distinct (slot, pos) pairs; one row past max_ctx
        slot[m] = static_cast<int32_t>(m % slots);
        pos[m] = static_cast<int32_t>(m / slots + 7 * (m % slots));
      }
      if (M > 5) pos[5] = static_cast<int32_t>(max_ctx);  // rotated q, no cache write
      std::vector<float> inv_freq(half);
      for (int64_t i = 0; i < half; ++i)
        inv_freq[i] = static_cast<float>(1.0 / std::pow(10000.0, 2.0 * i / hd));
      auto dq = to_device(qkv.raw), dp = to_device(pos), ds = to_device(slot),
           df = to_device(inv_freq);
      const size_t cache_elems = slots * max_ctx * kvw;
      auto dk = poisoned(cache_elems * 2), dv = poisoned(cache_elems * 2);
      SS_ASSERT_OK(k::launch_rope_kv(t, dq.get(), ld, M, H, KV, hd, dp.as<int32_t>(),
                                     ds.as<int32_t>(), df.as<float>(), dk.get(), dv.get(), max_ctx,
                                     nullptr));
      // Reference: rotate q in place, k into the cache, v copied; everything else untouched.
      std::vector<uint16_t> want = qkv.raw;
      std::vector<uint16_t> kc(cache_elems, 0xABAB), vc(cache_elems, 0xABAB);
      for (int64_t m = 0; m < M; ++m) {
        const bool to_cache = pos[m] < max_ctx;
        const int64_t crow = (slot[m] * max_ctx + pos[m]) * kvw;
        for (int64_t h = 0; h < H + KV; ++h) {
          const uint16_t* src = &qkv.raw[m * ld + h * hd];
          uint16_t* dst = h < H ? &want[m * ld + h * hd] : &kc[crow + (h - H) * hd];
          if (h >= H && !to_cache) continue;
          for (int64_t i = 0; i < half; ++i) {
            const float ang = ex::fmul(static_cast<float>(pos[m]), inv_freq[i]);
            const float c = rt(t, static_cast<float>(std::cos(static_cast<double>(ang))));
            const float s = rt(t, static_cast<float>(std::sin(static_cast<double>(ang))));
            const float x1 = val(t, src[i]), x2 = val(t, src[i + half]);
            dst[i] = rnd(t, ex::fadd(rt(t, ex::fmul(x1, c)), rt(t, ex::fmul(-x2, s))));
            dst[i + half] = rnd(t, ex::fadd(rt(t, ex::fmul(x2, c)), rt(t, ex::fmul(x1, s))));
          }
        }
        if (to_cache) std::copy_n(&qkv.raw[m * ld + (H + KV) * hd], kvw, &vc[crow]);
      }
      expect_same16(to_host<uint16_t>(dq, M * ld), want, ld, "qkv (q rotated in place)");
      expect_same16(to_host<uint16_t>(dk, cache_elems), kc, kvw, "k_cache");
      expect_same16(to_host<uint16_t>(dv, cache_elems), vc, kvw, "v_cache");
    }
}

// ---- SwiGLU ---------------------------------------------------------------------------------
std::vector<uint16_t> ref_silu_mul(DType t, const std::vector<uint16_t>& gu, int64_t ld, int64_t M,
                                   int64_t F) {
  std::vector<uint16_t> out(M * F);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t f = 0; f < F; ++f) {
      const float s = rt(t, ex::silu_f32(val(t, gu[m * ld + f])));
      out[m * F + f] = rnd(t, ex::fmul(s, val(t, gu[m * ld + F + f])));
    }
  return out;
}

// The fast SwiGLU's tolerance against the reference: T(silu(g)) within 1 ulp of T (u = 1, every
// finite input below), T(T(silu(g)) * u) within 2 (a 1-ulp silu moves the product by < 2 ulps of
// its own binade); at most 2 % (bf16) / 5 % (fp16) of the elements differ at all (the analysis in
// row_ops.cuh predicts ~0.3 % / ~1 %).
constexpr int64_t kFastSiluUlp = 1, kFastSwigluUlp = 2;
double fast_frac(DType t) {
  return t == DType::kF16 ? 0.05 : 0.02;
}
const k::SiluMath kMaths[] = {k::SiluMath::kExact, k::SiluMath::kFast};

TEST(EngineKernels, SiluMulExactBitExactFastWithinTolerance) {
  SS_SKIP_WITHOUT_GPU();
  uint64_t seed = 500;
  for (k::SiluMath math : kMaths)
    for (DType t : {DType::kBF16, DType::kF16})
      for (int64_t F : kCols)
        for (int64_t M : kRows)
          for (int64_t ld_extra : {0, 8, 1}) {
            SCOPED_TRACE(std::string(k::silu_math_name(math)) + " " + tname(t) +
                         " M=" + std::to_string(M) + " F=" + std::to_string(F) + " ld=2F+" +
                         std::to_string(ld_extra));
            const int64_t ld = 2 * F + ld_extra;
            Acts gu = random_acts(t, M, ld, ++seed, 10.0f);
            auto dg = to_device(gu.raw);
            auto dout = poisoned(M * F * 2);
            SS_ASSERT_OK(k::launch_silu_mul(t, dg.get(), ld, M, F, dout.get(), nullptr, math));
            const auto got = to_host<uint16_t>(dout, M * F);
            const auto want = ref_silu_mul(t, gu.raw, ld, M, F);
            if (math == k::SiluMath::kExact)
              expect_same16(got, want, F, "silu_mul exact");
            else if (M * F >= 10000)  // the fraction bound needs enough elements
              expect_close16(t, got, want, F, kFastSwigluUlp, fast_frac(t), "silu_mul fast");
            else
              expect_close16(t, got, want, F, kFastSwigluUlp, 1.0, "silu_mul fast");
          }
}

// ---- argmax ---------------------------------------------------------------------------------
TEST(EngineKernels, ArgmaxTiesNanInf) {
  SS_SKIP_WITHOUT_GPU();
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
  uint64_t seed = 700;
  for (DType t : {DType::kBF16, DType::kF16, DType::kF32})
    for (int64_t V : {1, 7, 111, 32000, 151936})
      for (int64_t ld_extra : {0, 5}) {
        const int64_t ld = V + ld_extra;
        SCOPED_TRACE(tname(t) + " V=" + std::to_string(V) + " ld=" + std::to_string(ld));
        const int64_t M = 9;
        std::mt19937_64 rng(++seed);
        std::uniform_real_distribution<float> u(-30.0f, 30.0f);
        std::vector<float> x(M * ld, 0.0f);
        for (auto& v : x) v = u(rng);
        auto at = [&](int64_t m, int64_t i) -> float& { return x[m * ld + i % V]; };
        // row 0: random. row 1: tie of the maximum at two places (the lower wins).
        at(1, V / 3) = 100.0f, at(1, V - 1) = 100.0f, at(1, V / 2) = 100.0f;
        // row 2: NaNs everywhere in front, one where the max would be; max elsewhere.
        for (int64_t i = 0; i < std::min<int64_t>(V, 40); ++i) at(2, i) = nan;
        at(2, V - 1) = 200.0f;
        at(3, V / 2) = nan;
        at(3, V / 2 + 1) = inf;  // +inf wins over everything but a lower +inf
        for (int64_t i = 0; i < V; ++i) at(4, i) = -inf;  // all -inf -> 0
        for (int64_t i = 0; i < V; ++i) at(5, i) = nan;   // all NaN -> 0
        for (int64_t i = 0; i < V; ++i) at(6, i) = (i % 3) ? -inf : nan;
        at(6, V - 1) = -1e4f;  // a single finite value among -inf and NaN
        for (int64_t i = 0; i < V; ++i) at(7, i) = 0.0f;
        at(7, V / 4) = -0.0f;  // all zero: 0 (-0.0 == 0.0, lowest index)
        at(8, V - 1) = 1e30f;  // the last index (inf in F16 / finite else)
        std::vector<uint16_t> raw(M * ld);
        std::vector<float> xv(M * ld);  // the values as the GPU sees them
        for (size_t i = 0; i < x.size(); ++i) {
          if (t == DType::kF32) {
            xv[i] = x[i];
          } else {
            raw[i] = rnd(t, x[i]);
            xv[i] = val(t, raw[i]);
          }
        }
        std::vector<int32_t> want(M);
        for (int64_t m = 0; m < M; ++m) {
          int64_t best = -1;
          for (int64_t i = 0; i < V; ++i) {
            float v = xv[m * ld + i];
            if (std::isnan(v)) continue;
            if (best < 0 || v > xv[m * ld + best]) best = i;
          }
          want[m] = static_cast<int32_t>(best < 0 ? 0 : best);
        }
        auto dx = t == DType::kF32 ? to_device(x) : to_device(raw);
        auto dout = poisoned(M * 4);
        SS_ASSERT_OK(k::launch_argmax(t, dx.get(), ld, M, V, dout.as<int32_t>(), nullptr));
        auto got = to_host<int32_t>(dout, M);
        for (int64_t m = 0; m < M; ++m) ASSERT_EQ(got[m], want[m]) << "row " << m;
      }
}

// ---- quantization at its rounding boundaries ------------------------------------------------
// launch_quantize of raw T rows [rows, C] against quantize_rows (the core rule): codes and scales
// bit-identical. Returns the GPU's scales (empty after a failed assertion).
std::vector<float> expect_quantize_as_cpu(DType t, QuantMode q, const std::vector<uint16_t>& raw,
                                          int64_t rows, int64_t C, const char* what) {
  std::vector<float> f(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) f[i] = val(t, raw[i]);
  std::vector<uint8_t> want(rows * C);
  std::vector<float> sc(rows);
  quantize_rows(q, f.data(), rows, C, want.data(), sc.data());
  auto dx = to_device(raw);
  auto dout = poisoned(rows * C), dsc = poisoned(rows * 4);
  Status st =
      k::launch_quantize(t, q, dx.get(), rows, C, dout.get(), rows, C, dsc.as<float>(), nullptr);
  EXPECT_TRUE(st.ok()) << st.to_string();
  if (!st.ok()) return {};
  expect_same8(to_host<uint8_t>(dout, rows * C), want, C, what);
  auto gsc = to_host<float>(dsc, rows);
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_EQ(std::memcmp(&gsc[r], &sc[r], 4), 0) << what << ": scale row " << r;
    if (std::memcmp(&gsc[r], &sc[r], 4) != 0) return {};
  }
  return gsc;
}

// The kernels' quantize (shared by launch_quantize, launch_quant_lift and the fused prologues)
// takes a multiply-by-reciprocal fast path away from rounding boundaries; rows whose scale is
// exactly 1 put values right on the boundaries (k + 1/2 for int8, e4m3 midpoints and subnormals
// for fp8), where only the exact division may decide.
TEST(EngineKernels, QuantizeRoundingBoundaries) {
  SS_SKIP_WITHOUT_GPU();
  for (DType t : {DType::kBF16, DType::kF16})
    for (QuantMode q : {QuantMode::kInt8, QuantMode::kFp8}) {
      SCOPED_TRACE(tname(t) + " " + quant_mode_name(q));
      const float qmax = quant_qmax(q);
      std::vector<float> vals;
      if (q == QuantMode::kInt8) {
        for (int k = -127; k < 127; ++k) vals.push_back(k + 0.5f);
      } else {
        for (int e = -9; e <= 8; ++e)  // e4m3 midpoints (normal and subnormal) and neighbours
          for (int m = 0; m < 16; ++m)
            if (std::ldexp(1.0f + m / 16.0f, e) <= qmax)
              vals.push_back(std::ldexp(1.0f + m / 16.0f, e));
        for (int m = 1; m < 32; ++m) vals.push_back(std::ldexp(static_cast<float>(m), -10));
      }
      // + one bf16 row of tiny values: scale subnormal, 1/scale overflows to inf.
      const int64_t C = 64, full = (static_cast<int64_t>(vals.size()) + C - 2) / (C - 1);
      const int64_t rows = full + (t == DType::kBF16 ? 1 : 0);
      std::vector<uint16_t> raw(rows * C);
      for (int64_t c = 0; c < C && rows > full; ++c)
        raw[full * C + c] = rnd(t, (c % 2 ? -3e-37f : 3e-37f) * static_cast<float>(c + 1) / C);
      for (int64_t r = 0; r < full; ++r) {
        raw[r * C] = rnd(t, qmax);  // absmax = qmax: scale exactly 1
        for (int64_t c = 1; c < C; ++c) {
          size_t i = static_cast<size_t>(r * (C - 1) + c - 1);
          float v = i < vals.size() ? vals[i] : 0.25f;
          if (c % 2) v = -v;
          raw[r * C + c] = rnd(t, v);
        }
      }
      const std::vector<float> gsc =
          expect_quantize_as_cpu(t, q, raw, rows, C, "codes at rounding boundaries");
      for (int64_t r = 0; r < full && r < static_cast<int64_t>(gsc.size()); ++r)
        ASSERT_EQ(gsc[r], 1.0f);
    }
}

// The fast path with scales other than 1 (y = x * inv differs from x / scale in the last bits),
// at values where that can matter: fp8 values in e4m3's subnormal range (|y| < 2^-6, grid 2^-9)
// and near its odd multiples of 2^-10, int8 values near k + 1/2, plus ordinary values; random row
// absmax over 2^-6 .. 2^8. The codes and scales must be the CPU rule's.
TEST(EngineKernels, QuantizeTinyAndNearBoundaryRandomScales) {
  SS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(2026);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  for (DType t : {DType::kBF16, DType::kF16})
    for (QuantMode q : {QuantMode::kInt8, QuantMode::kFp8}) {
      SCOPED_TRACE(tname(t) + " " + quant_mode_name(q));
      const float qmax = quant_qmax(q);
      const int64_t rows = 96, C = 1024;
      std::vector<uint16_t> raw(rows * C);
      for (int64_t r = 0; r < rows; ++r) {
        const float amax = std::ldexp(1.0f, -6 + static_cast<int>(r % 15)) * (1.0f + uni(rng) / 4);
        const float unit = rt(t, amax) / qmax;  // ~ the row's scale
        raw[r * C] = rnd(t, amax);
        for (int64_t c = 1; c < C; ++c) {
          float y;  // the intended quotient x / scale
          switch (c % 3) {
            case 0:  // ordinary
              y = uni(rng) * qmax * 0.99f;
              break;
            case 1:  // int8: small codes; fp8: the subnormal range and its edge at 2^-6
              y = q == QuantMode::kInt8 ? uni(rng) * 2.0f : uni(rng) * 0.0165f;
              break;
            default: {  // next to a rounding boundary
              const float k = std::floor(std::fabs(uni(rng)) * (q == QuantMode::kInt8 ? 126 : 15));
              const float b = q == QuantMode::kInt8 ? k + 0.5f : std::ldexp(2 * k + 1, -10);
              y = b * (1.0f + uni(rng) * 1e-3f);
            }
          }
          raw[r * C + c] = rnd(t, (c % 2 ? -y : y) * unit);
        }
        // x whose quotient lies within the scale's rounding error (2^-24) of a boundary without
        // being on it, when amax / qmax is inexact: A / 2 (int8 63.5), and for e4m3 A * 2^-16
        // (7 * 2^-10, subnormal), 3 A * 2^-16 (21 * 2^-10) and 3 A * 2^(j-10) (21/16 * 2^j).
        const float A = val(t, raw[r * C]);
        std::vector<float> ties = {A / 2};
        if (q == QuantMode::kFp8) {
          ties.push_back(std::ldexp(A, -16));
          ties.push_back(std::ldexp(3 * A, -16));
          for (int j = -6; j <= 8; ++j) ties.push_back(std::ldexp(3 * A, j - 10));
        }
        for (size_t i = 0; i < ties.size(); ++i)
          raw[r * C + 1 + static_cast<int64_t>(i)] = rnd(t, i % 2 ? -ties[i] : ties[i]);
      }
      expect_quantize_as_cpu(t, q, raw, rows, C, "codes, random scales");
    }
}

// ---- fused prologues ------------------------------------------------------------------------
struct SlotCase {
  QuantMode q;
  const char* pattern;  // nullptr: plain quantize (dense W8A8 layer)
};
const SlotCase kSlots[] = {
    {QuantMode::kInt8, nullptr}, {QuantMode::kInt8, "2:4"},  {QuantMode::kInt8, "6:8"},
    {QuantMode::kInt8, "8:10"},  {QuantMode::kFp8, nullptr}, {QuantMode::kFp8, "2:4"},
    {QuantMode::kFp8, "6:8"},    {QuantMode::kFp8, "8:10"},  {QuantMode::kNone, "2:4"},
    {QuantMode::kNone, "6:8"},   {QuantMode::kNone, "8:10"}};

// A slot as a layer would hand it out (M_pad rounded to the GEMM alignment), poisoned.
struct TestSlot {
  InputSlot s;
  cuda::DeviceBuffer codes, scales;
  size_t code_bytes = 0;
};
TestSlot make_slot(DType t, const SlotCase& sc, int64_t M, int64_t C, int byte) {
  TestSlot ts;
  const bool q8 = sc.q != QuantMode::kNone;
  const int64_t align = q8 ? 32 : 16;
  ts.s.quant = sc.q;
  ts.s.dtype = q8 ? quant_storage_dtype(sc.q) : t;
  ts.s.lifted = sc.pattern != nullptr;
  if (ts.s.lifted) ts.s.lift = *Pattern::parse(sc.pattern);
  ts.s.M_pad = round_up(M, align);
  ts.s.K_out = ts.s.lifted ? ts.s.lift.k_lifted_aligned(C, align) : round_up(C, 16);
  ts.code_bytes = static_cast<size_t>(ts.s.M_pad * ts.s.K_out) * (q8 ? 1 : 2);
  ts.codes = poisoned(ts.code_bytes, byte);
  ts.scales = poisoned(ts.s.M_pad * 4, byte);
  ts.s.codes = ts.codes.get();
  ts.s.scales = q8 ? ts.scales.as<float>() : nullptr;
  return ts;
}

// The layer's own prologue on a plain activation y [M, C] (device), into slot `ts`.
Status unfused_prologue(DType t, const void* y, int64_t M, int64_t C, TestSlot& ts) {
  const InputSlot& s = ts.s;
  if (s.quant == QuantMode::kNone)
    return k::launch_lift(t, s.lift, y, M, C, s.codes, s.M_pad, s.K_out, nullptr);
  if (s.lifted)
    return k::launch_quant_lift(t, s.quant, s.lift, y, M, C, s.codes, s.M_pad, s.K_out, s.scales,
                                nullptr);
  return k::launch_quantize(t, s.quant, y, M, C, s.codes, s.M_pad, s.K_out, s.scales, nullptr);
}

// CPU expectation of a slot's bytes from the T row values y [M, C] (raw): quantize_rows (the core
// rule) then the lift gather, or the lift of the raw values; rows >= M and padding zero.
std::vector<uint8_t> ref_slot(DType t, const TestSlot& ts, const std::vector<uint16_t>& y,
                              int64_t M, int64_t C, std::vector<float>* scales) {
  const InputSlot& s = ts.s;
  std::vector<uint8_t> out(ts.code_bytes, 0);
  if (s.quant == QuantMode::kNone) {
    EXPECT_TRUE(lift_activations(t, y.data(), M, C, s.lift, out.data(), s.K_out).ok());
    return out;
  }
  std::vector<float> yf(M * C);
  for (int64_t i = 0; i < M * C; ++i) yf[i] = val(t, y[i]);
  std::vector<uint8_t> codes(M * C);
  scales->assign(M, 0.0f);
  quantize_rows(s.quant, yf.data(), M, C, codes.data(), scales->data());
  if (s.lifted) {
    EXPECT_TRUE(lift_activations(quant_storage_dtype(s.quant), codes.data(), M, C, s.lift,
                                 out.data(), s.K_out)
                    .ok());
  } else {
    for (int64_t m = 0; m < M; ++m) std::copy_n(&codes[m * C], C, &out[m * s.K_out]);
  }
  return out;
}

// Fused vs unfused GPU vs CPU, for one slot; `fused` runs the fused launch into ts_f.
template <class Fused>
void check_slot(DType t, const SlotCase& sc, int64_t M, int64_t C, const void* y_dev,
                const std::vector<uint16_t>& y_ref, Fused fused) {
  SCOPED_TRACE(std::string(quant_mode_name(sc.q)) + " " + (sc.pattern ? sc.pattern : "dense"));
  TestSlot f = make_slot(t, sc, M, C, 0xAB), u = make_slot(t, sc, M, C, 0xCD);
  SS_ASSERT_OK(fused(f.s));
  SS_ASSERT_OK(unfused_prologue(t, y_dev, M, C, u));
  const int64_t row_bytes = f.s.K_out * (sc.q == QuantMode::kNone ? 2 : 1);
  auto got_f = to_host<uint8_t>(f.codes, f.code_bytes);
  auto got_u = to_host<uint8_t>(u.codes, u.code_bytes);
  expect_same8(got_f, got_u, row_bytes, "fused vs unfused GPU codes");
  std::vector<float> sc_ref;
  expect_same8(got_f, ref_slot(t, f, y_ref, M, C, &sc_ref), row_bytes, "fused vs CPU codes");
  if (sc.q != QuantMode::kNone) {
    auto sf = to_host<float>(f.scales, M), su = to_host<float>(u.scales, M);
    for (int64_t m = 0; m < M; ++m) {
      ASSERT_EQ(std::memcmp(&sf[m], &su[m], 4), 0) << "scale row " << m << " vs unfused";
      ASSERT_EQ(std::memcmp(&sf[m], &sc_ref[m], 4), 0)
          << "scale row " << m << ": " << sf[m] << " vs CPU " << sc_ref[m];
    }
  }
}

TEST(EngineKernels, AddRmsNormPrologueBitExact) {
  SS_SKIP_WITHOUT_GPU();
  uint64_t seed = 900;
  // With and without the residual add (W8A8 engines add in the o / down epilogues and norm
  // without it). C = 2000: threads of one and of two 16-byte chunks in one CTA; 5120: Qwen2.5-14B's
  // hidden size; 12288: three chunks per thread. The register-row kernel: 64, 80, 2000 (chunks
  // past C skipped), 3072 / 3584 / 5120 / 12288 (6 / 7 / 5 / 8 chunks for every thread).
  const int64_t cols[] = {64, 80, 111, 2000, 3072, 3584, 5120, 12288};
  int regs_cases = 0;
  for (DType t : {DType::kBF16, DType::kF16})
    for (int64_t C : cols)
      for (int64_t M : kRows)
        for (bool with_d : {true, false}) {
          if (M == 300 && C != 3584 && C != 111) continue;
          if (C == 12288 && M > 7) continue;
          SCOPED_TRACE(tname(t) + " M=" + std::to_string(M) + " C=" + std::to_string(C) +
                       (with_d ? " add" : " no add"));
          const NormInputs in = norm_inputs(t, M, C, &seed);
          const Acts &x = in.x, &d = in.d, &w = in.w;
          const float eps = 1e-5f;
          std::vector<uint16_t> xr = x.raw, yr;
          ref_add_rmsnorm(t, xr, with_d ? &d.raw : nullptr, w.raw, eps, M, C, &yr);
          // The unfused path's y (its own test checks it against yr too).
          auto dx0 = to_device(x.raw), dd_buf = to_device(d.raw), dw = to_device(w.raw);
          const void* dd = with_d ? dd_buf.get() : nullptr;
          auto dy = poisoned(M * C * 2);
          SS_ASSERT_OK(
              k::launch_add_rmsnorm(t, dx0.get(), dd, dw.get(), eps, dy.get(), M, C, nullptr));
          expect_same16(to_host<uint16_t>(dy, M * C), yr, C, "rmsnorm y");
          for (const SlotCase& sc : kSlots) {
            auto dx = to_device(x.raw);
            check_slot(t, sc, M, C, dy.get(), yr, [&](const InputSlot& s) {
              return k::launch_add_rmsnorm_prologue(t, dx.get(), dd, dw.get(), eps, M, C, s,
                                                    nullptr);
            });
            if (HasFatalFailure()) return;
            expect_same16(to_host<uint16_t>(dx, M * C), xr, C,
                          with_d ? "residual x (fused)" : "x untouched (no add)");
            // The register-row kernel where it applies (no add; plain, 2:4 or 6:8 codes; C % 8
            // == 0, C <= 16384): the same bytes; elsewhere it refuses with kUnsupported.
            const std::string pat = sc.pattern ? sc.pattern : "";
            const bool regs = !with_d && sc.q != QuantMode::kNone &&
                              (pat.empty() || pat == "2:4" || pat == "6:8") && C % 8 == 0 &&
                              C <= 16384;
            if (!regs) {
              TestSlot ts = make_slot(t, sc, M, C, 0);
              EXPECT_FALSE(k::add_rmsnorm_prologue_regs_supports(C, ts.s, with_d));
              EXPECT_EQ(k::launch_add_rmsnorm_prologue(t, dx.get(), dd, dw.get(), eps, M, C, ts.s,
                                                       nullptr, k::NormKernel::kRegs)
                            .code(),
                        StatusCode::kUnsupported);
              continue;
            }
            SCOPED_TRACE("register-row kernel");
            check_slot(t, sc, M, C, dy.get(), yr, [&](const InputSlot& s) {
              EXPECT_TRUE(k::add_rmsnorm_prologue_regs_supports(C, s, false));
              return k::launch_add_rmsnorm_prologue(t, dx.get(), dd, dw.get(), eps, M, C, s,
                                                    nullptr, k::NormKernel::kRegs);
            });
            if (HasFatalFailure()) return;
            expect_same16(to_host<uint16_t>(dx, M * C), xr, C, "x untouched (register-row kernel)");
            ++regs_cases;
          }
        }
  // 2 dtypes x ((C, M) in {64, 80, 2000, 3072, 5120} x {1, 7, 19} + 3584 x {1, 7, 19, 300} +
  // 12288 x {1, 7}) x 6 slots.
  EXPECT_EQ(regs_cases, 2 * 21 * 6);
}

// The prologue (each SiluMath) against the plain kernel of the same math and the CPU: the plain
// kernel's y is the reference's (exact) or within the fast tolerance of it (fast); the prologue's
// codes / scales / lifted values are then bit-identical to quantizing / lifting that y on the GPU
// (unfused) and on the CPU.
TEST(EngineKernels, SiluMulPrologueBitExact) {
  SS_SKIP_WITHOUT_GPU();
  uint64_t seed = 1100;
  std::vector<std::pair<int64_t, int64_t>> shapes;  // (M, F)
  for (int64_t F : kCols)
    for (int64_t M : kRows)
      if (M != 300 || F == 3584 || F == 111) shapes.push_back({M, F});
  shapes.push_back({3, 18944});  // Qwen2.5-7B's F: > 48 KiB of shared memory per row
  for (k::SiluMath math : kMaths)
    for (DType t : {DType::kBF16, DType::kF16})
      for (const auto& mf : shapes) {
        const int64_t M = mf.first, F = mf.second;
        for (int64_t ld_extra : {0, 1}) {
          SCOPED_TRACE(std::string(k::silu_math_name(math)) + " " + tname(t) +
                       " M=" + std::to_string(M) + " F=" + std::to_string(F) + " ld=2F+" +
                       std::to_string(ld_extra));
          const int64_t ld = 2 * F + ld_extra;
          Acts gu = random_acts(t, M, ld, ++seed, 10.0f);
          auto yr = ref_silu_mul(t, gu.raw, ld, M, F);
          auto dg = to_device(gu.raw);
          auto dy = poisoned(M * F * 2);
          SS_ASSERT_OK(k::launch_silu_mul(t, dg.get(), ld, M, F, dy.get(), nullptr, math));
          const auto y = to_host<uint16_t>(dy, M * F);
          if (math == k::SiluMath::kExact)
            expect_same16(y, yr, F, "silu_mul y");
          else
            expect_close16(t, y, yr, F, kFastSwigluUlp, 1.0, "silu_mul y (fast)");
          for (const SlotCase& sc : kSlots) {
            check_slot(t, sc, M, F, dy.get(), y, [&](const InputSlot& s) {
              return k::launch_silu_mul_prologue(t, dg.get(), ld, M, F, s, nullptr, math);
            });
            if (HasFatalFailure()) return;
          }
        }
      }
}

// Every finite 16-bit gate value (up = 1): the exact SwiGLU (SFU exp, approximate division, exact
// fallback near rounding boundaries) rounds as the reference for all of them, the fast one within
// 1 ulp of T, through the plain kernel and through the fused prologue's quantize (int8 and fp8
// codes of the plain kernel's values).
TEST(EngineKernels, SiluEveryFinite16BitInput) {
  SS_SKIP_WITHOUT_GPU();
  for (k::SiluMath math : kMaths)
    for (DType t : {DType::kBF16, DType::kF16}) {
      SCOPED_TRACE(std::string(k::silu_math_name(math)) + " " + tname(t));
      std::vector<uint16_t> g;
      for (uint32_t b = 0; b < 65536; ++b)
        if (std::isfinite(val(t, static_cast<uint16_t>(b)))) g.push_back(static_cast<uint16_t>(b));
      // Rows of 8192 (the prologue's register path holds up to 20480 columns per row).
      const int64_t F = 8192, M = (static_cast<int64_t>(g.size()) + F - 1) / F;
      std::vector<uint16_t> gu(static_cast<size_t>(M * 2 * F), rnd(t, 1.0f));
      for (size_t i = 0; i < gu.size() / 2; ++i) gu[(i / F) * 2 * F + i % F] = g[i % g.size()];
      const auto yr = ref_silu_mul(t, gu, 2 * F, M, F);
      auto dg = to_device(gu);
      auto dy = poisoned(M * F * 2);
      SS_ASSERT_OK(k::launch_silu_mul(t, dg.get(), 2 * F, M, F, dy.get(), nullptr, math));
      const auto y = to_host<uint16_t>(dy, M * F);
      if (math == k::SiluMath::kExact)
        expect_same16(y, yr, F, "silu_mul, every finite input");
      else
        expect_close16(t, y, yr, F, kFastSiluUlp, fast_frac(t), "silu, every finite input (fast)");
      for (const SlotCase& sc : kSlots) {
        check_slot(t, sc, M, F, dy.get(), y, [&](const InputSlot& s) {
          return k::launch_silu_mul_prologue(t, dg.get(), 2 * F, M, F, s, nullptr, math);
        });
        if (HasFatalFailure()) return;
      }
    }
}

// The fused prologue into a real layer's slot + forward_prepared == the layer's own forward.
TEST(EngineKernels, PrologueThroughGpuLinear) {
  SS_SKIP_WITHOUT_GPU();
  const int64_t M = 19, C = 256, N = 96;
  uint64_t seed = 1300;
  for (DType t : {DType::kBF16, DType::kF16})
    for (QuantMode q : {QuantMode::kInt8, QuantMode::kFp8, QuantMode::kNone})
      for (LinearMode mode : {LinearMode::kSparse, LinearMode::kDense}) {
        if (q == QuantMode::kNone && mode == LinearMode::kDense) continue;  // no slot
        SCOPED_TRACE(tname(t) + " " + quant_mode_name(q) + " " + linear_mode_name(mode));
        auto wf = random_f32(N * C, ++seed);
        auto w =
            nm_compress(wf.data(), N, C, Pattern{6, 8}, PruneMethod::kMagnitude, nullptr, q, t);
        SS_ASSERT_OK(w.status());
        LinearConfig cfg;
        cfg.act_dtype = t;
        auto layer = make_linear(mode, *w, nullptr, cfg);
        if (!layer.ok() && layer.status().code() == StatusCode::kUnsupported)
          GTEST_SKIP() << layer.status().to_string();
        SS_ASSERT_OK(layer.status());
        const NormInputs in = norm_inputs(t, M, C, &seed);
        const Acts &x = in.x, &d = in.d, &nw = in.w;
        auto dx = to_device(x.raw), dx2 = to_device(x.raw), dd = to_device(d.raw),
             dw = to_device(nw.raw);
        auto dy = poisoned(M * C * 2), o1 = poisoned(M * N * 2, 0x11), o2 = poisoned(M * N * 2);
        SS_ASSERT_OK(
            k::launch_add_rmsnorm(t, dx.get(), dd.get(), dw.get(), 1e-6f, dy.get(), M, C, nullptr));
        SS_ASSERT_OK((*layer)->forward(dy.get(), o1.get(), M, nullptr));
        auto slot = (*layer)->input_slot(M);
        SS_ASSERT_OK(slot.status());
        SS_ASSERT_OK(k::launch_add_rmsnorm_prologue(t, dx2.get(), dd.get(), dw.get(), 1e-6f, M, C,
                                                    *slot, nullptr));
        SS_ASSERT_OK((*layer)->forward_prepared(o2.get(), M, nullptr));
        expect_same16(to_host<uint16_t>(o2, M * N), to_host<uint16_t>(o1, M * N), N,
                      "layer output, fused prologue vs forward");
      }
}

TEST(EngineKernels, LaunchersRejectBadArguments) {
  SS_SKIP_WITHOUT_GPU();
  auto buf = poisoned(1 << 16), buf2 = poisoned(1 << 16);
  void* p = buf.get();
  auto* i32 = buf.as<int32_t>();
  auto* f32 = buf.as<float>();
  auto bad = [](const Status& s) { return !s.ok() && s.message().find('\n') == std::string::npos; };
  EXPECT_TRUE(bad(k::launch_embedding(DType::kF32, p, 10, 8, i32, 1, p, nullptr)));
  EXPECT_TRUE(bad(k::launch_embedding(DType::kBF16, p, 10, 0, i32, 1, p, nullptr)));
  EXPECT_TRUE(bad(k::launch_add_rmsnorm(DType::kI8, p, nullptr, p, 1e-6f, p, 1, 8, nullptr)));
  EXPECT_TRUE(bad(k::launch_add_rmsnorm(DType::kBF16, p, nullptr, p, 1e-6f, p, 1, 0, nullptr)));
  EXPECT_TRUE(bad(k::launch_silu_mul(DType::kBF16, p, 15, 1, 8, p, nullptr)));  // ld < 2F
  EXPECT_TRUE(bad(k::launch_rope_kv(DType::kBF16, p, 64, 1, 3, 2, 16, i32, i32, f32, p, p, 8,
                                    nullptr)));  // H % KV
  EXPECT_TRUE(bad(k::launch_rope_kv(DType::kBF16, p, 64, 1, 2, 1, 15, i32, i32, f32, p, p, 8,
                                    nullptr)));  // odd hd
  EXPECT_TRUE(bad(k::launch_argmax(DType::kI8, p, 8, 1, 8, i32, nullptr)));
  EXPECT_TRUE(bad(k::launch_argmax(DType::kF32, p, 4, 1, 8, i32, nullptr)));  // ld < V
  InputSlot s;  // dense W16A16: no codes
  EXPECT_TRUE(
      bad(k::launch_add_rmsnorm_prologue(DType::kBF16, p, nullptr, p, 1e-6f, 1, 64, s, nullptr)));
  s.codes = buf2.get();
  s.scales = buf2.as<float>() + 4096;
  s.quant = QuantMode::kInt8;
  s.dtype = DType::kI8;
  s.M_pad = 32;
  s.K_out = 48;  // < C = 64
  EXPECT_TRUE(bad(k::launch_silu_mul_prologue(DType::kBF16, p, 128, 1, 64, s, nullptr)));
  s.K_out = 64;
  s.dtype = DType::kF8E4M3;  // does not match int8
  EXPECT_TRUE(bad(k::launch_silu_mul_prologue(DType::kBF16, p, 128, 1, 64, s, nullptr)));
  s.dtype = DType::kI8;
  s.M_pad = 0;  // < M
  EXPECT_TRUE(bad(k::launch_silu_mul_prologue(DType::kBF16, p, 128, 1, 64, s, nullptr)));
  s.M_pad = 32;
  s.quant = QuantMode::kNone;
  s.dtype = DType::kBF16;  // W16A16 slot must be lifted
  EXPECT_TRUE(bad(k::launch_silu_mul_prologue(DType::kBF16, p, 128, 1, 64, s, nullptr)));
  s.quant = QuantMode::kInt8;
  s.dtype = DType::kI8;
  s.codes = static_cast<char*>(buf2.get()) + 8;  // misaligned
  EXPECT_TRUE(bad(k::launch_silu_mul_prologue(DType::kBF16, p, 128, 1, 64, s, nullptr)));
  // and a good call on the same buffers works
  s.codes = buf2.get();
  SS_ASSERT_OK(k::launch_silu_mul_prologue(DType::kBF16, p, 128, 1, 64, s, nullptr));
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

// ---- bandwidth at engine sizes ---------------------------------------------------------------
// Median of 20 timed runs (CUDA events) after 3 warm-ups; bytes = what the kernel must move
// (inputs read once, outputs written once; the [C] norm weight ignored).
template <class F>
double median_us(F f) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(f().ok());
  std::vector<double> us;
  for (int i = 0; i < 20; ++i) {
    cudaEventRecord(a);
    Status st = f();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    EXPECT_TRUE(st.ok()) << st.to_string();
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    us.push_back(ms * 1e3);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}
// buf [M, cols] of T = N(0, 1) values: 256 rows made on the host, copied down the buffer. The
// uniform fill has few tiny values; a Gaussian gate x up row has many (a model's SwiGLU outputs
// do), and the quantizer's speed depends on how many elements leave its fast path.
void fill_gaussian_rows(DType t, cuda::DeviceBuffer& buf, int64_t M, int64_t cols) {
  const int64_t R = std::min<int64_t>(M, 256);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<uint16_t> h(R * cols);
  for (auto& v : h) v = rnd(t, nd(rng));
  const size_t bytes = h.size() * 2;
  ASSERT_EQ(cudaMemcpy(buf.get(), h.data(), bytes, cudaMemcpyHostToDevice), cudaSuccess);
  for (int64_t r = R; r < M; r += R)
    ASSERT_EQ(
        cudaMemcpy(static_cast<char*>(buf.get()) + r * cols * 2, buf.get(),
                   static_cast<size_t>(std::min(R, M - r) * cols * 2), cudaMemcpyDeviceToDevice),
        cudaSuccess);
}

double g_peak_gbs = 0;  // the device's DRAM peak: 2 x memory clock x bus width
void report(const char* what, double us, double bytes) {
  std::printf("%-58s %9.1f us %8.1f GB/s  (%.0f%% of peak)\n", what, us, bytes / us * 1e-3,
              bytes / us * 1e-3 / g_peak_gbs * 100);
}

TEST(EngineKernels, DISABLED_Bandwidth) {
  SS_SKIP_WITHOUT_GPU();
  const DType t = DType::kBF16;
  {
    cudaDeviceProp prop{};
    int khz = 0, bits = 0;
    ASSERT_EQ(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
    ASSERT_EQ(cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, 0), cudaSuccess);
    ASSERT_EQ(cudaDeviceGetAttribute(&bits, cudaDevAttrGlobalMemoryBusWidth, 0), cudaSuccess);
    g_peak_gbs = 2.0 * khz * 1e3 * bits / 8 * 1e-9;
    std::printf("%s: DRAM peak %.0f GB/s (%d kHz x %d bits x 2)\n", prop.name, g_peak_gbs, khz,
                bits);
  }
  {
    const int64_t M = 16384, C = 3584;
    cuda::DeviceBuffer x, d, w, y;
    SS_ASSERT_OK(x.reserve(M * C * 2));
    SS_ASSERT_OK(d.reserve(M * C * 2));
    SS_ASSERT_OK(w.reserve(C * 2));
    SS_ASSERT_OK(y.reserve(M * C * 2));
    SS_ASSERT_OK(k::launch_fill_random(t, x.get(), M * C, 1, nullptr));
    SS_ASSERT_OK(k::launch_fill_random(t, d.get(), M * C, 2, nullptr));
    SS_ASSERT_OK(k::launch_fill_random(t, w.get(), C, 3, nullptr));
    const double io = 2.0 * M * C;  // one bf16 [M, C] tensor
    double us = median_us([&] {
      return k::launch_add_rmsnorm(t, x.get(), d.get(), w.get(), 1e-6f, y.get(), M, C, nullptr);
    });
    report("add_rmsnorm bf16 M=16384 C=3584 (r x,d; w x,y)", us, 4 * io);
    for (const SlotCase& sc :
         {SlotCase{QuantMode::kInt8, nullptr}, SlotCase{QuantMode::kInt8, "6:8"},
          SlotCase{QuantMode::kFp8, "6:8"}, SlotCase{QuantMode::kNone, "6:8"}}) {
      TestSlot s = make_slot(t, sc, M, C, 0);
      const double out = static_cast<double>(s.code_bytes) + (s.s.scales ? 4.0 * M : 0.0);
      double fu = median_us([&] {
        return k::launch_add_rmsnorm_prologue(t, x.get(), d.get(), w.get(), 1e-6f, M, C, s.s,
                                              nullptr);
      });
      double un = median_us([&] {
        Status st =
            k::launch_add_rmsnorm(t, x.get(), d.get(), w.get(), 1e-6f, y.get(), M, C, nullptr);
        return st.ok() ? unfused_prologue(t, y.get(), M, C, s) : st;
      });
      std::string name = std::string("add_rmsnorm_prologue ") + quant_mode_name(sc.q) + " " +
                         (sc.pattern ? sc.pattern : "dense") + " (r x,d; w x,slot)";
      report(name.c_str(), fu, 3 * io + out);
      std::printf("%-58s %9.1f us  (fused saves %.0f%%)\n", "  unfused: add_rmsnorm + prologue", un,
                  (1 - fu / un) * 100);
      // Without the residual add (the W8A8 engine's norms): x read once, the slot written.
      double na = median_us([&] {
        return k::launch_add_rmsnorm_prologue(t, x.get(), nullptr, w.get(), 1e-6f, M, C, s.s,
                                              nullptr);
      });
      name = std::string("rmsnorm_prologue ") + quant_mode_name(sc.q) + " " +
             (sc.pattern ? sc.pattern : "dense") + " no add (r x; w slot)";
      report(name.c_str(), na, io + out);
      if (k::add_rmsnorm_prologue_regs_supports(C, s.s, false)) {  // the register-row kernel
        double wa = median_us([&] {
          return k::launch_add_rmsnorm_prologue(t, x.get(), nullptr, w.get(), 1e-6f, M, C, s.s,
                                                nullptr, k::NormKernel::kRegs);
        });
        name = std::string("  register row: ") + quant_mode_name(sc.q) + " " +
               (sc.pattern ? sc.pattern : "dense") + " no add";
        report(name.c_str(), wa, io + out);
      }
    }
    fill_gaussian_rows(t, x, M, C);  // the register-row norm on Gaussian rows
    for (QuantMode q : {QuantMode::kInt8, QuantMode::kFp8}) {
      TestSlot s = make_slot(t, SlotCase{q, nullptr}, M, C, 0);
      double wa = median_us([&] {
        return k::launch_add_rmsnorm_prologue(t, x.get(), nullptr, w.get(), 1e-6f, M, C, s.s,
                                              nullptr, k::NormKernel::kRegs);
      });
      report((std::string("  register row: ") + quant_mode_name(q) + " dense, Gaussian x").c_str(),
             wa, io + static_cast<double>(s.code_bytes) + 4.0 * M);
    }
  }
  {
    const int64_t M = 16384, F = 18944;
    cuda::DeviceBuffer gu, y;
    SS_ASSERT_OK(gu.reserve(M * 2 * F * 2));
    SS_ASSERT_OK(y.reserve(M * F * 2));
    SS_ASSERT_OK(k::launch_fill_random(t, gu.get(), M * 2 * F, 4, nullptr));
    const double io = 2.0 * M * F;
    for (k::SiluMath math : kMaths) {
      const std::string mn = k::silu_math_name(math);
      double us = median_us(
          [&] { return k::launch_silu_mul(t, gu.get(), 2 * F, M, F, y.get(), nullptr, math); });
      report(("silu_mul " + mn + " bf16 M=16384 F=18944 (r gu; w y)").c_str(), us, 3 * io);
      for (const SlotCase& sc :
           {SlotCase{QuantMode::kInt8, nullptr}, SlotCase{QuantMode::kFp8, nullptr},
            SlotCase{QuantMode::kInt8, "6:8"}, SlotCase{QuantMode::kFp8, "6:8"},
            SlotCase{QuantMode::kNone, "6:8"}}) {
        TestSlot s = make_slot(t, sc, M, F, 0);
        const double out = static_cast<double>(s.code_bytes) + (s.s.scales ? 4.0 * M : 0.0);
        double fu = median_us([&] {
          return k::launch_silu_mul_prologue(t, gu.get(), 2 * F, M, F, s.s, nullptr, math);
        });
        double un = median_us([&] {
          Status st = k::launch_silu_mul(t, gu.get(), 2 * F, M, F, y.get(), nullptr, math);
          return st.ok() ? unfused_prologue(t, y.get(), M, F, s) : st;
        });
        std::string name = "silu_mul_prologue " + mn + " " + quant_mode_name(sc.q) + " " +
                           (sc.pattern ? sc.pattern : "dense") + " (r gu; w slot)";
        report(name.c_str(), fu, 2 * io + out);
        std::printf("%-58s %9.1f us  (fused saves %.0f%%)\n", "  unfused: silu_mul + prologue", un,
                    (1 - fu / un) * 100);
      }
    }
    fill_gaussian_rows(t, gu, M, 2 * F);  // gate and up N(0, 1), as a model's rows
    for (const SlotCase& sc :
         {SlotCase{QuantMode::kInt8, nullptr}, SlotCase{QuantMode::kFp8, nullptr},
          SlotCase{QuantMode::kFp8, "6:8"}}) {
      TestSlot s = make_slot(t, sc, M, F, 0);
      const double out = static_cast<double>(s.code_bytes) + 4.0 * M;
      double fu = median_us([&] {
        return k::launch_silu_mul_prologue(t, gu.get(), 2 * F, M, F, s.s, nullptr,
                                           k::SiluMath::kFast);
      });
      std::string name = std::string("silu_mul_prologue fast ") + quant_mode_name(sc.q) + " " +
                         (sc.pattern ? sc.pattern : "dense") + ", Gaussian gu";
      report(name.c_str(), fu, 2 * io + out);
    }
  }
  {
    const int64_t M = 256, V = 151936;
    cuda::DeviceBuffer l, o;
    SS_ASSERT_OK(l.reserve(M * V * 2));
    SS_ASSERT_OK(o.reserve(M * 4));
    SS_ASSERT_OK(k::launch_fill_random(t, l.get(), M * V, 5, nullptr));
    double us =
        median_us([&] { return k::launch_argmax(t, l.get(), V, M, V, o.as<int32_t>(), nullptr); });
    report("argmax bf16 M=256 V=151936", us, 2.0 * M * V);
  }
}

}  // namespace
}  // namespace slidesparse
