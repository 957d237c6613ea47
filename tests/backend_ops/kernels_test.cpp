// Every CUDA kernel of the linear layer against its CPU reference, bit for bit: fused
// quantize+lift, quantize only, lift only, dequant+bias epilogue (+ residual add in place), slided
// operand build.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "backend_ops/gpu_test_util.h"
#include "cuda/kernels/epilogue.cuh"
#include "cuda/kernels/lift.cuh"
#include "cuda/kernels/quant.cuh"
#include "cuda/kernels/quant_lift.cuh"
#include "cuda/kernels/slide_build.cuh"
#include "slidesparse/nm_tensor.h"
#include "slidesparse/quant.h"
#include "slidesparse/slide.h"

namespace slidesparse {
namespace {

using cuda::round_up;
using namespace test;
namespace k = cuda::kernels;

struct MK {
  int64_t M, K;
};
const MK kShapes[] = {{1, 19}, {7, 64}, {19, 111}, {33, 3584}, {5, 1001}};
const char* kPatterns[] = {"2:4", "4:6", "6:8", "8:10", "5:8", "14:16"};

// CPU expectation: quantize rows, then lift the codes (a pure gather), rows >= M zero.
std::vector<uint8_t> expect_quant(QuantMode q, const Acts& a, int64_t M, int64_t K, bool lift,
                                  Pattern p, int64_t M_pad, int64_t K_out,
                                  std::vector<float>* scales) {
  std::vector<uint8_t> codes(M * K);
  scales->assign(M, 0.0f);
  quantize_rows(q, a.f32.data(), M, K, codes.data(), scales->data());
  std::vector<uint8_t> out(M_pad * K_out, 0);
  DType ct = quant_storage_dtype(q);
  if (lift) {
    EXPECT_TRUE(lift_activations(ct, codes.data(), M, K, p, out.data(), K_out).ok());
  } else {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t c = 0; c < K; ++c) out[m * K_out + c] = codes[m * K + c];
  }
  return out;
}

TEST(CudaKernels, QuantLiftAndQuantizeBitExact) {
  SS_SKIP_WITHOUT_GPU();
  uint64_t seed = 100;
  for (DType act : {DType::kBF16, DType::kF16})
    for (QuantMode q : {QuantMode::kInt8, QuantMode::kFp8})
      for (const char* ps : kPatterns)
        for (const MK& s : kShapes) {
          Pattern p = *Pattern::parse(ps);
          SCOPED_TRACE(std::string(dtype_name(act)) + " " + quant_mode_name(q) + " " + ps +
                       " M=" + std::to_string(s.M) + " K=" + std::to_string(s.K));
          Acts a = random_acts(act, s.M, s.K, ++seed, act == DType::kF16 ? 8.0f : 1e3f);
          auto dx = to_device(a.raw);
          int64_t M_pad = round_up(s.M, 32);
          for (bool lift : {true, false}) {
            if (!lift && std::string(ps) != "2:4") continue;  // quantize only: once per shape
            int64_t K_out = lift ? p.k_lifted_aligned(s.K, 32) : round_up(s.K, 16);
            auto dout = poisoned(M_pad * K_out);
            auto dsc = poisoned(s.M * sizeof(float));
            Status st = lift ? k::launch_quant_lift(act, q, p, dx.get(), s.M, s.K, dout.get(),
                                                    M_pad, K_out, dsc.as<float>(), nullptr)
                             : k::launch_quantize(act, q, dx.get(), s.M, s.K, dout.get(), M_pad,
                                                  K_out, dsc.as<float>(), nullptr);
            SS_ASSERT_OK(st);
            std::vector<float> sc;
            auto want = expect_quant(q, a, s.M, s.K, lift, p, M_pad, K_out, &sc);
            auto got = to_host<uint8_t>(dout, M_pad * K_out);
            auto gsc = to_host<float>(dsc, s.M);
            for (int64_t m = 0; m < s.M; ++m)
              ASSERT_EQ(std::memcmp(&gsc[m], &sc[m], 4), 0)
                  << "scale row " << m << ": " << gsc[m] << " vs " << sc[m];
            for (size_t i = 0; i < want.size(); ++i)
              ASSERT_EQ(got[i], want[i])
                  << "lift=" << lift << " row " << i / K_out << " col " << i % K_out;
          }
        }
}

TEST(CudaKernels, LiftBitExact) {
  SS_SKIP_WITHOUT_GPU();
  uint64_t seed = 500;
  for (DType t : {DType::kBF16, DType::kF16})
    for (const char* ps : kPatterns)
      for (const MK& s : kShapes) {
        Pattern p = *Pattern::parse(ps);
        SCOPED_TRACE(std::string(dtype_name(t)) + " " + ps + " M=" + std::to_string(s.M) +
                     " K=" + std::to_string(s.K));
        Acts a = random_acts(t, s.M, s.K, ++seed);
        auto dx = to_device(a.raw);
        int64_t M_pad = round_up(s.M, 16), K_out = p.k_lifted_aligned(s.K, 16);
        auto dout = poisoned(M_pad * K_out * 2);
        SS_ASSERT_OK(k::launch_lift(t, p, dx.get(), s.M, s.K, dout.get(), M_pad, K_out, nullptr));
        std::vector<uint16_t> want(M_pad * K_out, 0);
        SS_ASSERT_OK(lift_activations(t, a.raw.data(), s.M, s.K, p, want.data(), K_out));
        auto got = to_host<uint16_t>(dout, M_pad * K_out);
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_EQ(got[i], want[i]) << "row " << i / K_out << " col " << i % K_out;
      }
}

TEST(CudaKernels, EpilogueBitExact) {
  SS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(7);
  for (DType acc_t : {DType::kI32, DType::kF32})
    for (DType out_t : {DType::kBF16, DType::kF16})
      for (auto [M, N] : {std::pair<int64_t, int64_t>{1, 111}, {19, 64}, {7, 1}, {64, 4096}})
        for (int variant = 0; variant < 4; ++variant) {
          const bool with_bias = variant & 1, with_res = variant & 2;
          SCOPED_TRACE(std::string(dtype_name(acc_t)) + "->" + dtype_name(out_t) +
                       " M=" + std::to_string(M) + " N=" + std::to_string(N) +
                       (with_bias ? " bias" : "") + (with_res ? " residual" : ""));
          int64_t ld = round_up(N, 32);
          std::vector<int32_t> acc(M * ld);
          for (auto& v : acc) {
            int32_t i = static_cast<int32_t>(rng() % 4000001) - 2000000;
            if (acc_t == DType::kF32) {
              float f = static_cast<float>(i) * 0.37f;
              std::memcpy(&v, &f, 4);
            } else {
              v = i;
            }
          }
          acc[0] = acc_t == DType::kF32 ? static_cast<int32_t>(0x80000000u) : 0;  // -0.0 / 0
          auto sx = random_f32(M, rng(), 1e-2f);
          auto sw = random_f32(N, rng(), 1e-2f);
          auto bias = random_f32(N, rng(), 2.0f);
          auto dacc = to_device(acc);
          auto dsx = to_device(sx), dsw = to_device(sw), db = to_device(bias);
          // Residual (in place: y holds it before): values of the output dtype of either sign
          // and up to 64x the layer output's magnitude, so that the sum rounds.
          auto to16 = [&](float f) {
            return out_t == DType::kBF16 ? float_to_bf16(f) : float_to_fp16(f);
          };
          auto from16 = [&](uint16_t b) {
            return out_t == DType::kBF16 ? bf16_to_float(b) : fp16_to_float(b);
          };
          std::vector<uint16_t> res(M * N);
          for (auto& r : res)
            r = to16((static_cast<float>(rng() % 20001) - 10000.0f) *
                     (out_t == DType::kBF16 ? 1e-2f : 1e-3f));
          auto dy = with_res ? to_device(res) : poisoned(M * N * 2, 0xFF);
          SS_ASSERT_OK(k::launch_epilogue(acc_t, dacc.get(), ld, dsx.as<float>(), dsw.as<float>(),
                                          with_bias ? db.as<float>() : nullptr, out_t, dy.get(), N,
                                          M, N, nullptr, with_res ? dy.get() : nullptr));
          auto got = to_host<uint16_t>(dy, M * N);
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) {
              float a;
              if (acc_t == DType::kF32)
                std::memcpy(&a, &acc[m * ld + n], 4);
              else
                a = static_cast<float>(acc[m * ld + n]);
              volatile float r = a * sx[m];
              r = r * sw[n];
              if (with_bias) r = r + bias[n];
              uint16_t want = to16(r);
              if (with_res) {
                volatile float sum = from16(res[m * N + n]) + from16(want);
                want = to16(sum);
              }
              ASSERT_EQ(got[m * N + n], want) << "m=" << m << " n=" << n;
            }
        }
}

TEST(CudaKernels, SlideBuildBitExact) {
  SS_SKIP_WITHOUT_GPU();
  uint64_t seed = 900;
  for (QuantMode q : {QuantMode::kNone, QuantMode::kInt8, QuantMode::kFp8})
    for (const char* ps : kPatterns)
      for (auto [N, K] : {std::pair<int64_t, int64_t>{111, 19}, {1, 64}, {40, 1001}}) {
        Pattern p = *Pattern::parse(ps);
        SCOPED_TRACE(std::string(quant_mode_name(q)) + " " + ps + " N=" + std::to_string(N) +
                     " K=" + std::to_string(K));
        auto w = random_f32(N * K, ++seed);
        for (int64_t i = 0; i < N * K; i += 13) w[i] = (i % 2) ? -0.0f : 0.0f;
        auto nm = nm_compress(w.data(), N, K, p, PruneMethod::kMagnitude, nullptr, q, DType::kBF16);
        SS_ASSERT_OK(nm.status());
        const DType vt = nm->value_dtype;
        const size_t es = dtype_size(vt);
        int64_t align = es == 1 ? 32 : 16;
        int64_t N_pad = round_up(N, align), K_out = p.k_lifted_aligned(K, align);
        std::vector<uint8_t> dense(N * K * es);
        nm_unpack(*nm, dense.data());
        std::vector<uint8_t> want(N_pad * K_out * es, 0);
        SS_ASSERT_OK(slide_weights(vt, dense.data(), N, K, p, want.data(), K_out));
        auto dv = to_device(nm->values);
        auto dm = to_device(nm->masks);
        auto dout = poisoned(want.size());
        SS_ASSERT_OK(k::launch_slide_build(vt, p, dv.get(), dm.as<uint16_t>(), N, K, dout.get(),
                                           N_pad, K_out, nullptr));
        auto got = to_host<uint8_t>(dout, want.size());
        // Exact, except that the sign of a zero is not part of the contract (-0.0 is zero).
        auto canon = [&](std::vector<uint8_t>& v) {
          if (vt == DType::kI8) return;
          for (size_t i = 0; i < v.size(); i += es) {
            if (es == 2 && v[i] == 0 && v[i + 1] == 0x80) v[i + 1] = 0;
            if (es == 1 && v[i] == 0x80) v[i] = 0;
          }
        };
        canon(got);
        canon(want);
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_EQ(got[i], want[i]) << "byte " << i << " (row " << i / (K_out * es) << ")";
      }
}

TEST(CudaKernels, LaunchersRejectBadArguments) {
  SS_SKIP_WITHOUT_GPU();
  auto buf = poisoned(4096);
  Pattern p68{6, 8};
  // K_out too small for the lift, not a multiple of 16, wrong dtypes: one clear error each.
  Status s = k::launch_quant_lift(DType::kBF16, QuantMode::kInt8, p68, buf.get(), 1, 64, buf.get(),
                                  32, 64, buf.as<float>(), nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  s = k::launch_quantize(DType::kF32, QuantMode::kInt8, buf.get(), 1, 64, buf.get(), 1, 64,
                         buf.as<float>(), nullptr);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.to_string();
  s = k::launch_lift(DType::kI8, p68, buf.get(), 1, 64, buf.get(), 16, 96, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.to_string();
  s = k::launch_epilogue(DType::kI32, buf.get(), 8, nullptr, nullptr, nullptr, DType::kF32,
                         buf.get(), 8, 1, 8, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.to_string();
  s = k::launch_slide_build(DType::kI8, Pattern{7, 8}, buf.get(), buf.as<uint16_t>(), 1, 8,
                            buf.get(), 32, 32, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
}

}  // namespace
}  // namespace slidesparse
