// The GPU linear layers against the CPU reference: int8 sparse (cuSPARSELt over the slided
// weight) and dense (cuBLASLt) accumulators bit-exact, full layer within 1 bf16/fp16 ulp; fp8 and
// bf16/fp16 within stated tolerances. Odd shapes (M = 1, 7, 19, 65536; K not a multiple of m;
// N = 111), bias, -0.0, poisoned outputs, auto mode, the residual forms (W8A8), and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <tuple>
#include <string>
#include <vector>

#include "backend_ops/gpu_test_util.h"
#include "slidesparse/linear.h"
#include "slidesparse/nm_tensor.h"
#include "slidesparse/reference.h"

namespace slidesparse {
namespace {

using namespace test;

struct Case {
  int64_t M, N, K;
};
// K not a multiple of m (19, 100, 1001), N = 111, M = 1, 7, 19.
const Case kCases[] = {{1, 111, 100}, {7, 64, 19}, {19, 111, 1001}, {33, 256, 512}};

float out_to_f32(DType t, uint16_t v) {
  return t == DType::kF16 ? fp16_to_float(v) : bf16_to_float(v);
}
uint16_t f32_to_out(DType t, float v) {
  return t == DType::kF16 ? float_to_fp16(v) : float_to_bf16(v);
}

struct LayerRun {
  std::vector<uint16_t> y;   // [M, N] from forward
  std::vector<uint8_t> acc;  // [M, N] raw accumulators after run_gemm
};

// forward into a poisoned y, then the three stages again to read the accumulators.
LayerRun run_layer(GpuLinear& l, const Acts& a, DType act, int64_t M, int64_t N, size_t acc_es) {
  LayerRun r;
  auto dx = to_device(a.raw);
  auto dy = poisoned(M * N * 2, 0xFF);  // NaN pattern in bf16 and fp16
  Status s = l.forward(dx.get(), dy.get(), M, nullptr);
  EXPECT_TRUE(s.ok()) << l.describe() << ": " << s.to_string();
  r.y = to_host<uint16_t>(dy, M * N);
  s = l.run_prologue(dx.get(), M, nullptr);
  EXPECT_TRUE(s.ok()) << s.to_string();
  s = l.run_gemm(M, nullptr);
  EXPECT_TRUE(s.ok()) << s.to_string();
  r.acc.resize(M * N * acc_es);
  s = l.copy_accumulators(M, r.acc.data(), nullptr);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return r;
}

// y within `ulps` of the rounded reference, never NaN (the output was poisoned).
void expect_close_ulps(DType act, const std::vector<uint16_t>& y, const std::vector<float>& ref,
                       int ulps) {
  for (size_t i = 0; i < ref.size(); ++i) {
    float g = out_to_f32(act, y[i]);
    ASSERT_FALSE(std::isnan(g)) << "output " << i << " left poisoned";
    int32_t d = ordered16(y[i]) - ordered16(f32_to_out(act, ref[i]));
    ASSERT_LE(std::abs(d), ulps) << "output " << i << ": " << g << " vs reference " << ref[i];
  }
}

// |y - ref| <= rel * (|ref| + |ref - bias[n]|) + abs_frac * max|ref|, never NaN. The |ref - bias|
// term covers W16A16 with bias, where the bias is added to the GEMM's rounded bf16/fp16 output
// (two roundings; the second is relative to the pre-bias value). bias may be null.
void expect_close_tol(DType act, const std::vector<uint16_t>& y, const std::vector<float>& ref,
                      double rel, double abs_frac, const float* bias = nullptr, int64_t N = 1) {
  double mx = 0;
  for (float v : ref) mx = std::max(mx, static_cast<double>(std::fabs(v)));
  for (size_t i = 0; i < ref.size(); ++i) {
    float g = out_to_f32(act, y[i]);
    ASSERT_FALSE(std::isnan(g)) << "output " << i << " left poisoned";
    double pre = bias ? std::fabs(ref[i] - bias[i % N]) : 0.0;
    ASSERT_LE(std::fabs(g - ref[i]), rel * (std::fabs(ref[i]) + pre) + abs_frac * mx)
        << "output " << i << ": " << g << " vs reference " << ref[i];
  }
}

// The residual forms of a W8A8 layer: r = T(r + y) in place, bit for bit the host add of the y
// that forward wrote (both forms; the CPU add is IEEE fp32 on exactly representable inputs).
void expect_residual_forms(GpuLinear& l, const Acts& a, DType act, int64_t M, int64_t N,
                           const std::vector<uint16_t>& y, uint64_t seed) {
  ASSERT_TRUE(l.fuses_residual()) << l.describe();
  auto rf = random_f32(M * N, seed, act == DType::kF16 ? 4.0f : 16.0f);
  std::vector<uint16_t> res(rf.size()), want(rf.size());
  for (size_t i = 0; i < rf.size(); ++i) {
    res[i] = f32_to_out(act, rf[i]);
    volatile float sum = out_to_f32(act, res[i]) + out_to_f32(act, y[i]);
    want[i] = f32_to_out(act, sum);
  }
  auto dx = to_device(a.raw);
  for (bool prepared : {false, true}) {
    SCOPED_TRACE(prepared ? "forward_prepared_residual" : "forward_residual");
    auto dr = to_device(res);
    if (prepared) {
      SS_ASSERT_OK(l.run_prologue(dx.get(), M, nullptr));
      SS_ASSERT_OK(l.forward_prepared_residual(dr.get(), M, nullptr));
    } else {
      SS_ASSERT_OK(l.forward_residual(dx.get(), dr.get(), M, nullptr));
    }
    ASSERT_EQ(to_host<uint16_t>(dr, M * N), want);
  }
}

void check_int8(const NmTensor& w, const Acts& a, int64_t M, const std::vector<float>& bias,
                DType act) {
  std::vector<float> yref(M * w.N);
  std::vector<int32_t> accref(M * w.N);
  SS_ASSERT_OK(
      reference_sparse_linear(a.f32.data(), M, w, bias.data(), yref.data(), accref.data()));
  LinearConfig cfg;
  cfg.act_dtype = act;
  for (LinearMode mode : {LinearMode::kSparse, LinearMode::kDense}) {
    SCOPED_TRACE(linear_mode_name(mode));
    auto l = make_linear(mode, w, bias.data(), cfg);
    SS_ASSERT_OK(l.status());
    LayerRun r = run_layer(**l, a, act, M, w.N, 4);
    std::vector<int32_t> acc(M * w.N);
    std::memcpy(acc.data(), r.acc.data(), r.acc.size());
    for (size_t i = 0; i < acc.size(); ++i)
      ASSERT_EQ(acc[i], accref[i])
          << "int32 accumulator " << i << " (m=" << i / w.N << ", n=" << i % w.N << ")";
    expect_close_ulps(act, r.y, yref, 1);
    expect_residual_forms(**l, a, act, M, w.N, r.y, static_cast<uint64_t>(M * 7 + w.N));
  }
}

// Host only (runs without a GPU): the loader's conversion straight from stored parts (mixed
// dtypes, blocks crossing part boundaries, several threads) gives the codes and scales of
// dense_weight_codes on the parts' fp32 concatenation, for every precision.
TEST(DenseWeightCodes, FromStoredPartsEqualsConcatenation) {
  std::mt19937 rng(77);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  struct Shape2 {
    int64_t K;
    std::vector<int64_t> rows;
    std::vector<DType> dtypes;
  } shapes[] = {{int64_t{1} << 19, {3, 2, 1}, {DType::kBF16, DType::kF16, DType::kF32}},
                {96, {500, 7, 193}, {DType::kBF16, DType::kBF16, DType::kF16}},
                {100, {1}, {DType::kF32}}};
  for (const Shape2& sh : shapes) {
    std::vector<std::vector<uint8_t>> store;
    std::vector<TensorView> parts;
    std::vector<float> all;  // fp32 concatenation of the stored values
    for (size_t i = 0; i < sh.rows.size(); ++i) {
      const int64_t n = sh.rows[i] * sh.K;
      std::vector<float> f(static_cast<size_t>(n));
      for (float& x : f) x = nd(rng);
      f[0] = 0.0f;
      if (n > 1) f[1] = -0.0f;
      store.emplace_back(static_cast<size_t>(n) * dtype_size(sh.dtypes[i]));
      ASSERT_TRUE(convert_from_f32(sh.dtypes[i], f.data(), store.back().data(), n).ok());
      std::vector<float> back(static_cast<size_t>(n));
      ASSERT_TRUE(convert_to_f32(sh.dtypes[i], store.back().data(), back.data(), n).ok());
      all.insert(all.end(), back.begin(), back.end());
      TensorView v;
      v.dtype = sh.dtypes[i];
      v.shape = {sh.rows[i], sh.K};
      v.data = store.back().data();
      v.nbytes = store.back().size();
      parts.push_back(v);
    }
    const int64_t N = static_cast<int64_t>(all.size()) / sh.K;
    for (DType act : {DType::kBF16, DType::kF16})
      for (QuantMode q : {QuantMode::kNone, QuantMode::kInt8, QuantMode::kFp8}) {
        SCOPED_TRACE(std::string(dtype_name(act)) + " " + quant_mode_name(q) + " K " +
                     std::to_string(sh.K));
        auto want = dense_weight_codes(all.data(), N, sh.K, q, act);
        auto got = dense_weight_codes(parts, sh.K, q, act);
        ASSERT_TRUE(want.ok() && got.ok()) << got.status().to_string();
        EXPECT_EQ(got->N, N);
        EXPECT_EQ(got->dtype, want->dtype);
        EXPECT_TRUE(got->codes == want->codes);
        ASSERT_EQ(got->scales.size(), want->scales.size());
        EXPECT_EQ(std::memcmp(got->scales.data(), want->scales.data(), got->scales.size() * 4), 0);
      }
  }
  // A part that is not [*, K] float rows: one clear error.
  std::vector<uint8_t> b(64);
  TensorView bad;
  bad.dtype = DType::kI8;
  bad.shape = {1, 64};
  bad.data = b.data();
  bad.nbytes = b.size();
  auto r = dense_weight_codes(std::vector<TensorView>{bad}, 64, QuantMode::kNone, DType::kBF16);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("is not [*, 64] float rows"), std::string::npos)
      << r.status().message();
  bad.dtype = DType::kBF16;
  bad.shape = {2, 16};
  EXPECT_FALSE(
      dense_weight_codes(std::vector<TensorView>{bad}, 32, QuantMode::kNone, DType::kBF16).ok());
}

TEST(Sm80_SparseLinear_int8_TN, BitExactAccumulatorsAllPatterns) {
  SS_SKIP_WITHOUT_GPU();
  uint64_t seed = 1;
  for (const char* ps : {"2:4", "4:6", "6:8", "8:10", "5:8"})
    for (const Case& c : kCases) {
      SCOPED_TRACE(std::string(ps) + " M=" + std::to_string(c.M) + " N=" + std::to_string(c.N) +
                   " K=" + std::to_string(c.K));
      Pattern p = *Pattern::parse(ps);
      auto wf = random_f32(c.N * c.K, ++seed);
      auto w = nm_compress(wf.data(), c.N, c.K, p, PruneMethod::kMagnitude, nullptr,
                           QuantMode::kInt8, DType::kBF16);
      SS_ASSERT_OK(w.status());
      Acts a = random_acts(DType::kBF16, c.M, c.K, ++seed);
      auto bias = random_f32(c.N, ++seed, 0.5f);
      check_int8(*w, a, c.M, bias, DType::kBF16);
    }
}

TEST(Sm80_SparseLinear_int8_TN, Fp16ActivationsAndLargeM) {
  SS_SKIP_WITHOUT_GPU();
  // M = 65536 only for a small N, K.
  for (auto [M, N, K, act] :
       {std::tuple<int64_t, int64_t, int64_t, DType>{65536, 32, 64, DType::kBF16},
        {19, 111, 100, DType::kF16}}) {
    SCOPED_TRACE("M=" + std::to_string(M) + " " + dtype_name(act));
    auto wf = random_f32(N * K, 77);
    auto w = nm_compress(wf.data(), N, K, Pattern{6, 8}, PruneMethod::kMagnitude, nullptr,
                         QuantMode::kInt8, act);
    SS_ASSERT_OK(w.status());
    Acts a = random_acts(act, M, K, 78);
    auto bias = random_f32(N, 79, 0.5f);
    check_int8(*w, a, M, bias, act);
  }
}

TEST(Sm89_SparseLinear_fp8_TN, WithinTolerance) {
  SS_SKIP_WITHOUT_GPU();
  // fp8 e4m3 products are exact in fp32; only the summation order differs from the reference:
  // tolerance |y - ref| <= 2^-7 |ref| (output rounding) + 1e-3 max|ref| (accumulation order).
  uint64_t seed = 300;
  for (const char* ps : {"2:4", "6:8", "8:10"})
    for (const Case& c : kCases) {
      SCOPED_TRACE(std::string(ps) + " M=" + std::to_string(c.M) + " N=" + std::to_string(c.N) +
                   " K=" + std::to_string(c.K));
      Pattern p = *Pattern::parse(ps);
      auto wf = random_f32(c.N * c.K, ++seed);
      auto w = nm_compress(wf.data(), c.N, c.K, p, PruneMethod::kMagnitude, nullptr,
                           QuantMode::kFp8, DType::kBF16);
      SS_ASSERT_OK(w.status());
      Acts a = random_acts(DType::kBF16, c.M, c.K, ++seed);
      auto bias = random_f32(c.N, ++seed, 0.5f);
      std::vector<float> yref(c.M * c.N);
      SS_ASSERT_OK(reference_sparse_linear(a.f32.data(), c.M, *w, bias.data(), yref.data()));
      for (LinearMode mode : {LinearMode::kSparse, LinearMode::kDense}) {
        SCOPED_TRACE(linear_mode_name(mode));
        auto l = make_linear(mode, *w, bias.data(), LinearConfig{});
        SS_ASSERT_OK(l.status());
        LayerRun r = run_layer(**l, a, DType::kBF16, c.M, c.N, 4);
        expect_close_tol(DType::kBF16, r.y, yref, 1.0 / 128, 1e-3);
      }
    }
}

TEST(Sm80_SparseLinear_16bit_TN, WithinTolerance) {
  SS_SKIP_WITHOUT_GPU();
  // bf16/fp16 inputs, fp32 accumulation, rounding to the output type (and, with a bias, a second
  // rounding after the bias add): |y - ref| <= 2^-7 (|ref| + |ref - bias|) (bf16) or 2^-10 (...)
  // (fp16), + 1e-4 max|ref| for the summation order.
  uint64_t seed = 600;
  for (DType act : {DType::kBF16, DType::kF16})
    for (const char* ps : {"2:4", "4:6", "6:8", "8:10"})
      for (const Case& c : kCases) {
        SCOPED_TRACE(std::string(dtype_name(act)) + " " + ps + " M=" + std::to_string(c.M) +
                     " N=" + std::to_string(c.N) + " K=" + std::to_string(c.K));
        Pattern p = *Pattern::parse(ps);
        auto wf = random_f32(c.N * c.K, ++seed);
        auto w = nm_compress(wf.data(), c.N, c.K, p, PruneMethod::kMagnitude, nullptr,
                             QuantMode::kNone, act);
        SS_ASSERT_OK(w.status());
        Acts a = random_acts(act, c.M, c.K, ++seed, 2.0f);
        for (bool with_bias : {false, true}) {
          auto bias = random_f32(c.N, ++seed, 0.5f);
          const float* b = with_bias ? bias.data() : nullptr;
          std::vector<float> yref(c.M * c.N);
          SS_ASSERT_OK(reference_sparse_linear(a.f32.data(), c.M, *w, b, yref.data()));
          LinearConfig cfg;
          cfg.act_dtype = act;
          for (LinearMode mode : {LinearMode::kSparse, LinearMode::kDense}) {
            SCOPED_TRACE(std::string(linear_mode_name(mode)) + (with_bias ? " bias" : ""));
            auto l = make_linear(mode, *w, b, cfg);
            SS_ASSERT_OK(l.status());
            LayerRun r = run_layer(**l, a, act, c.M, c.N, 2);
            expect_close_tol(act, r.y, yref, act == DType::kF16 ? 1.0 / 1024 : 1.0 / 128, 1e-4, b,
                             c.N);
            // W16A16 has no residual epilogue: a clear kUnsupported, nothing written.
            EXPECT_FALSE((*l)->fuses_residual());
            auto dr = poisoned(static_cast<size_t>(c.M * c.N) * 2, 0x11);
            auto dx = to_device(a.raw);
            Status rs = (*l)->forward_residual(dx.get(), dr.get(), c.M, nullptr);
            EXPECT_EQ(rs.code(), StatusCode::kUnsupported) << rs.to_string();
            EXPECT_EQ(to_host<uint8_t>(dr, static_cast<size_t>(c.M * c.N) * 2),
                      std::vector<uint8_t>(static_cast<size_t>(c.M * c.N) * 2, 0x11));
          }
        }
      }
}

TEST(Sm80_AutoLinear_int8, PicksPerBucketAndMatches) {
  SS_SKIP_WITHOUT_GPU();
  const int64_t N = 64, K = 96;
  auto wf = random_f32(N * K, 5);
  auto w = nm_compress(wf.data(), N, K, Pattern{6, 8}, PruneMethod::kMagnitude, nullptr,
                       QuantMode::kInt8, DType::kBF16);
  SS_ASSERT_OK(w.status());
  // Sparse declared faster at bucket 32, dense at bucket 1.
  TuningTable t;
  t.put({"cusparselt", "int8", "6:8", N, K, 32, -1, 1, 0, 0, -1, 10.0});
  t.put({"cublaslt", "int8", "dense", N, K, 32, -1, 1, 0, 0, -1, 20.0});
  t.put({"cusparselt", "int8", "6:8", N, K, 1, -1, 1, 0, 0, -1, 30.0});
  t.put({"cublaslt", "int8", "dense", N, K, 1, -1, 1, 0, 0, -1, 20.0});
  LinearConfig cfg;
  cfg.tuning = &t;
  auto l = make_auto_linear(*w, nullptr, cfg);
  SS_ASSERT_OK(l.status());
  EXPECT_NE((*l)->describe().find("auto(dense "), std::string::npos) << (*l)->describe();
  EXPECT_NE((*l)->describe().find("| sparse "), std::string::npos) << (*l)->describe();
  // A layer no bucket picks is not built: no table, or sparse never 5 % faster -> dense only;
  // sparse faster everywhere -> sparse only.
  {
    auto none = make_auto_linear(*w, nullptr, LinearConfig{});
    SS_ASSERT_OK(none.status());
    EXPECT_NE((*none)->describe().find("| -)"), std::string::npos) << (*none)->describe();
    TuningTable slow, fast;
    slow.put({"cusparselt", "int8", "6:8", N, K, 32, -1, 1, 0, 0, -1, 19.5});
    slow.put({"cublaslt", "int8", "dense", N, K, 32, -1, 1, 0, 0, -1, 20.0});
    for (int64_t b = 1; b <= 65536; b *= 4) {  // data within 2x of every bucket
      fast.put({"cusparselt", "int8", "6:8", N, K, b, -1, 1, 0, 0, -1, 10.0});
      fast.put({"cublaslt", "int8", "dense", N, K, b, -1, 1, 0, 0, -1, 20.0});
    }
    LinearConfig cs, cf;
    cs.tuning = &slow;
    cf.tuning = &fast;
    auto ds = make_auto_linear(*w, nullptr, cs);
    SS_ASSERT_OK(ds.status());
    EXPECT_NE((*ds)->describe().find("| -)"), std::string::npos) << (*ds)->describe();
    auto sp = make_auto_linear(*w, nullptr, cf);
    SS_ASSERT_OK(sp.status());
    EXPECT_NE((*sp)->describe().find("auto(- | sparse "), std::string::npos) << (*sp)->describe();
  }
  for (int64_t M : {int64_t{1}, int64_t{19}}) {
    Acts a = random_acts(DType::kBF16, M, K, 6 + M);
    std::vector<float> yref(M * N);
    std::vector<int32_t> accref(M * N);
    SS_ASSERT_OK(reference_sparse_linear(a.f32.data(), M, *w, nullptr, yref.data(), accref.data()));
    LayerRun r = run_layer(**l, a, DType::kBF16, M, N, 4);
    std::vector<int32_t> acc(M * N);
    std::memcpy(acc.data(), r.acc.data(), r.acc.size());
    EXPECT_EQ(acc, accref) << "M=" << M;
    expect_close_ulps(DType::kBF16, r.y, yref, 1);
    expect_residual_forms(**l, a, DType::kBF16, M, N, r.y, 90 + M);  // through the picked layer
  }
  // Round trip of the table through JSON.
  std::string path = std::string(SS_TEST_TMP) + "/tuning_roundtrip.json";
  std::filesystem::create_directories(SS_TEST_TMP);
  SS_ASSERT_OK(t.save(path));
  auto back = TuningTable::load(path);
  SS_ASSERT_OK(back.status());
  ASSERT_EQ(back->entries.size(), t.entries.size());
  ASSERT_NE(back->find("cusparselt", "int8", "6:8", N, K, 17), nullptr);
  EXPECT_EQ(back->find("cusparselt", "int8", "6:8", N, K, 17)->us, 10.0);
}

TEST(Sm80_SparseLinear, BadInputIsOneClearError) {
  SS_SKIP_WITHOUT_GPU();
  auto wf = random_f32(32 * 64, 9);
  auto w = nm_compress(wf.data(), 32, 64, Pattern{6, 8}, PruneMethod::kMagnitude, nullptr,
                       QuantMode::kInt8, DType::kBF16);
  SS_ASSERT_OK(w.status());
  const NmTensor before = *w;
  // Activation dtype that does not match bf16 values of a W16 tensor.
  auto w16 = nm_compress(wf.data(), 32, 64, Pattern{6, 8}, PruneMethod::kMagnitude, nullptr,
                         QuantMode::kNone, DType::kBF16);
  LinearConfig f16;
  f16.act_dtype = DType::kF16;
  auto l = make_sparse_linear(*w16, nullptr, f16);
  EXPECT_EQ(l.status().code(), StatusCode::kInvalidArgument) << l.status().to_string();
  EXPECT_EQ(l.status().message().find('\n'), std::string::npos);
  // Broken mask (popcount != n).
  NmTensor bad = *w;
  bad.masks[3] = 0xff;
  l = make_sparse_linear(bad, nullptr, LinearConfig{});
  EXPECT_FALSE(l.ok());
  // Missing scales.
  bad = *w;
  bad.scales.clear();
  l = make_sparse_linear(bad, nullptr, LinearConfig{});
  EXPECT_FALSE(l.ok());
  EXPECT_EQ(l.status().message().find('\n'), std::string::npos);
  // Unsupported activation dtype.
  LinearConfig f32;
  f32.act_dtype = DType::kF32;
  l = make_sparse_linear(*w, nullptr, f32);
  EXPECT_EQ(l.status().code(), StatusCode::kUnsupported) << l.status().to_string();
  // M = 0 on a good layer.
  l = make_sparse_linear(*w, nullptr, LinearConfig{});
  SS_ASSERT_OK(l.status());
  auto buf = poisoned(4096);
  Status s = (*l)->forward(buf.get(), buf.get(), 0, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  // The input tensor is never modified.
  EXPECT_EQ(w->values, before.values);
  EXPECT_EQ(w->masks, before.masks);
  EXPECT_EQ(w->scales, before.scales);
}

}  // namespace
}  // namespace slidesparse
