// Slide of weights and lift of activations. Must show: losslessness checked EXHAUSTIVELY for every
// placement of kept positions in a block (every subset of size <= n = m-2 of the m positions,
// m = 4..16), bit-exact in integer arithmetic; random large matrices with K not a multiple of m
// (int8 and fp32 with small integers); the DESIGN example; every element dtype; bad input.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "slidesparse/dtype.h"
#include "slidesparse/prune.h"
#include "slidesparse/reference.h"
#include "slidesparse/slide.h"

using namespace slidesparse;

namespace {

int popcount(uint32_t v) {
  int c = 0;
  for (; v; v &= v - 1) ++c;
  return c;
}

// Encodes small integers (|v| <= 16, exact in every float format) into dtype t.
std::vector<uint8_t> encode(DType t, const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * dtype_size(t));
  EXPECT_TRUE(convert_from_f32(t, v.data(), out.data(), static_cast<int64_t>(v.size())).ok());
  return out;
}

std::vector<float> decode(DType t, const std::vector<uint8_t>& b) {
  std::vector<float> out(b.size() / dtype_size(t));
  EXPECT_TRUE(convert_to_f32(t, b.data(), out.data(), static_cast<int64_t>(out.size())).ok());
  return out;
}

}  // namespace

TEST(Slide, DesignExample68) {
  Pattern p = *Pattern::parse("6:8");
  const std::vector<float> w = {1, 0, 3, 4, 0, 6, 7, 8};
  std::vector<float> out(12, -99.0f);
  ASSERT_TRUE(slide_weights(DType::kF32, w.data(), 1, 8, p, out.data(), 12).ok());
  EXPECT_EQ(out, (std::vector<float>{1, 0, 3, 0, 0, 4, 0, 6, 0, 0, 7, 8}));
  // x' = [x0 x1 x2 x3 | x2 x3 x4 x5 | x4 x5 x6 x7]
  const std::vector<int> expect_src = {0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7};
  for (int kp = 0; kp < 12; ++kp) EXPECT_EQ(lift_source_index(kp, 8, p), expect_src[kp]);
  const std::vector<float> x = {10, 11, 12, 13, 14, 15, 16, 17};
  std::vector<float> xl(16, -99.0f);
  ASSERT_TRUE(lift_activations(DType::kF32, x.data(), 1, 8, p, xl.data(), 16).ok());
  EXPECT_EQ(xl, (std::vector<float>{10, 11, 12, 13, 12, 13, 14, 15, 14, 15, 16, 17, 0, 0, 0, 0}));
  float y = -1, yl = -1;
  gemm_ref_f32(x.data(), w.data(), &y, 1, 1, 8);
  gemm_ref_f32(xl.data(), out.data(), &yl, 1, 1, 12);
  EXPECT_EQ(y, yl);
}

// Every subset S of the m positions with |S| <= m-2 becomes one weight row with distinct nonzero
// values ±(i+1) at i in S. All rows are slided at once; then:
//  (1) every window holds <= 2 nonzeros (2:4 compliant);
//  (2) every lifted nonzero sits in a column whose lift source is exactly its original position,
//      and every original nonzero appears exactly once — so X'·W'ᵀ = X·Wᵀ for EVERY x;
//  (3) as a direct check of (2), the integer products with the m basis vectors e_k (which span all
//      x) and with random integer x agree bit-exactly: int8 GEMM on lifted vs original operands.
// Done for int8 and, for the same rows, every other weight dtype gives the same slided values.
TEST(Slide, ExhaustiveEveryPlacementM4To16) {
  std::mt19937 rng(2024);
  std::uniform_int_distribution<int> xd(-9, 9);
  for (int m = 4; m <= 16; m += 2) {
    const Pattern p{m - 2, m};
    const int L = p.lifted_block();
    std::vector<float> rows;
    std::vector<uint32_t> subsets;
    for (uint32_t s = 0; s < (1u << m); ++s) {
      if (popcount(s) > p.n) continue;
      subsets.push_back(s);
      for (int i = 0; i < m; ++i) {
        rows.push_back((s & (1u << i)) ? static_cast<float>((i % 2 ? -1 : 1) * (i + 1)) : 0.0f);
      }
    }
    const int64_t N = static_cast<int64_t>(subsets.size());
    // Poisoned output; K_out a bit larger than K' to check the alignment padding is zeroed.
    const int64_t K_out = L + 5;
    std::vector<int8_t> w8(rows.size()), ws(N * K_out, 0x5a);
    for (size_t i = 0; i < rows.size(); ++i) w8[i] = static_cast<int8_t>(rows[i]);
    ASSERT_TRUE(slide_weights(DType::kI8, w8.data(), N, m, p, ws.data(), K_out).ok()) << m;

    for (int64_t r = 0; r < N; ++r) {
      const int8_t* o = &ws[r * K_out];
      for (int64_t c = L; c < K_out; ++c) ASSERT_EQ(o[c], 0) << "padding, m=" << m;
      for (int j = 0; j < p.windows(); ++j) {
        int nz = 0;
        for (int t = 0; t < 4; ++t) nz += o[4 * j + t] != 0;
        ASSERT_LE(nz, 2) << "m=" << m << " subset " << subsets[r] << " window " << j;
      }
      uint32_t seen = 0;
      for (int c = 0; c < L; ++c) {
        if (o[c] == 0) continue;
        const int64_t src = lift_source_index(c, m, p);
        ASSERT_GE(src, 0);
        ASSERT_EQ(o[c], w8[r * m + src]) << "m=" << m << " subset " << subsets[r] << " col " << c;
        ASSERT_FALSE(seen & (1u << src)) << "placed twice";
        seen |= 1u << src;
      }
      ASSERT_EQ(seen, subsets[r]) << "m=" << m << ": a nonzero was dropped";
    }

    // (3) products with the basis vectors and random integer x, int8 -> int32 GEMM.
    const int64_t M = m + 4;
    std::vector<int8_t> x(M * m, 0), xl(M * K_out, 0x33);
    for (int k = 0; k < m; ++k) x[k * m + k] = 1;
    for (int64_t i = m * m; i < M * m; ++i) x[i] = static_cast<int8_t>(xd(rng));
    ASSERT_TRUE(lift_activations(DType::kI8, x.data(), M, m, p, xl.data(), K_out).ok());
    std::vector<int32_t> y(M * N, -1), yl(M * N, -2);
    gemm_ref_i8(x.data(), w8.data(), y.data(), M, N, m);
    gemm_ref_i8(xl.data(), ws.data(), yl.data(), M, N, K_out);
    ASSERT_EQ(y, yl) << "m=" << m;

    // Every float weight dtype slides to the same values (the slide only moves elements).
    for (DType t : {DType::kF32, DType::kBF16, DType::kF16, DType::kF8E4M3}) {
      std::vector<uint8_t> wt = encode(t, rows);
      std::vector<uint8_t> out(static_cast<size_t>(N * K_out) * dtype_size(t), 0x5a);
      ASSERT_TRUE(slide_weights(t, wt.data(), N, m, p, out.data(), K_out).ok());
      const std::vector<float> got = decode(t, out);
      for (int64_t i = 0; i < N * K_out; ++i) {
        ASSERT_EQ(got[i], static_cast<float>(ws[i])) << dtype_name(t) << " m=" << m;
      }
    }
  }
}

// A block with more nonzeros than 2(N-1) window slots cannot be placed: the error names row/block.
TEST(Slide, TooManyNonzerosFailsNamingRowAndBlock) {
  for (int m = 4; m <= 16; m += 2) {
    const Pattern p{m - 2, m};
    const int K = 2 * m;
    for (uint32_t s = 0; s < (1u << m); ++s) {
      if (popcount(s) <= p.n) continue;
      std::vector<float> w(3 * K, 0.0f);  // rows 0 and 2 fine; row 1 block 1 has the subset
      for (int i = 0; i < p.n; ++i) w[i] = w[2 * K + m + i] = 1.0f;
      for (int i = 0; i < m; ++i) {
        if (s & (1u << i)) w[K + m + i] = static_cast<float>(i + 1);
      }
      const std::vector<float> before = w;
      std::vector<float> out(3 * p.k_lifted(K));
      Status st = slide_weights(DType::kF32, w.data(), 3, K, p, out.data(), p.k_lifted(K));
      ASSERT_FALSE(st.ok()) << "m=" << m << " subset " << s;
      EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
      EXPECT_NE(st.message().find("row 1, block 1"), std::string::npos) << st.message();
      EXPECT_EQ(st.message().find('\n'), std::string::npos);
      ASSERT_EQ(w, before);
    }
  }
}

// Random large matrices, K not a multiple of m, pruned by magnitude: int8 and fp32 (small integers,
// so every fp32 sum is exact) lifted GEMM == dense GEMM, bit-exact. Alignment padding (K' rounded
// up to 32) is zero in both operands even when the buffers start poisoned.
TEST(Slide, RandomLargeMatricesKNotMultipleOfM) {
  std::mt19937 rng(77);
  std::uniform_int_distribution<int> wd(-127, 127), xd(-127, 127), sd(-8, 8);
  for (const char* ps : {"2:4", "4:6", "6:8", "5:8", "8:10", "10:12", "12:14", "14:16"}) {
    const Pattern p = *Pattern::parse(ps);
    const int64_t M = 13, N = 67, K = 1003;  // 1003 is prime: never a multiple of m
    const int64_t Kp = p.k_lifted_aligned(K, 32);
    // int8
    std::vector<float> wf(N * K);
    for (auto& v : wf) v = static_cast<float>(wd(rng));
    auto masks = prune_select(wf.data(), N, K, p, PruneMethod::kMagnitude, nullptr);
    ASSERT_TRUE(masks.ok());
    prune_apply(wf.data(), N, K, p, masks->data());
    std::vector<int8_t> w8(N * K), x8(M * K), ws(N * Kp, 0x77), xl(M * Kp, 0x77);
    for (int64_t i = 0; i < N * K; ++i) w8[i] = static_cast<int8_t>(wf[i]);
    for (auto& v : x8) v = static_cast<int8_t>(xd(rng));
    ASSERT_TRUE(slide_weights(DType::kI8, w8.data(), N, K, p, ws.data(), Kp).ok());
    ASSERT_TRUE(lift_activations(DType::kI8, x8.data(), M, K, p, xl.data(), Kp).ok());
    std::vector<int32_t> y(M * N, 1), yl(M * N, 2);
    gemm_ref_i8(x8.data(), w8.data(), y.data(), M, N, K);
    gemm_ref_i8(xl.data(), ws.data(), yl.data(), M, N, Kp);
    ASSERT_EQ(y, yl) << ps;
    // fp32 with small integers (|x·w| sums < 2^24: exact in any order)
    std::vector<float> xf(M * K), wsf(N * Kp, 123.0f), xlf(M * Kp, 123.0f);
    for (auto& v : xf) v = static_cast<float>(sd(rng));
    for (auto& v : wf) v = std::fmod(v, 9.0f);
    ASSERT_TRUE(slide_weights(DType::kF32, wf.data(), N, K, p, wsf.data(), Kp).ok());
    ASSERT_TRUE(lift_activations(DType::kF32, xf.data(), M, K, p, xlf.data(), Kp).ok());
    std::vector<float> yf(M * N, 1), ylf(M * N, 2);
    gemm_ref_f32(xf.data(), wf.data(), yf.data(), M, N, K);
    gemm_ref_f32(xlf.data(), wsf.data(), ylf.data(), M, N, Kp);
    ASSERT_EQ(yf, ylf) << ps;
  }
}

// The lift is a gather: for 1-, 2- and 4-byte elements every lifted column holds x[src] or 0.
TEST(Slide, LiftIsTheGatherOfLiftSourceIndexForEveryElementSize) {
  std::mt19937 rng(3);
  for (const char* ps : {"2:4", "6:8", "14:16"}) {
    const Pattern p = *Pattern::parse(ps);
    for (int64_t K : {1, 5, 17, 64}) {
      const int64_t M = 3, Kp = p.k_lifted_aligned(K, 32) + 7;
      for (DType t :
           {DType::kI8, DType::kF8E4M3, DType::kBF16, DType::kF16, DType::kF32, DType::kI32}) {
        const size_t es = dtype_size(t);
        std::vector<uint8_t> x(M * K * es), out(M * Kp * es, 0xee);
        for (auto& b : x) b = static_cast<uint8_t>(rng() | 1);  // never an all-zero element
        ASSERT_TRUE(lift_activations(t, x.data(), M, K, p, out.data(), Kp).ok());
        for (int64_t r = 0; r < M; ++r) {
          for (int64_t c = 0; c < Kp; ++c) {
            const int64_t s = lift_source_index(c, K, p);
            std::vector<uint8_t> want(es, 0);
            if (s >= 0) std::memcpy(want.data(), &x[(r * K + s) * es], es);
            ASSERT_EQ(0, std::memcmp(want.data(), &out[(r * Kp + c) * es], es))
                << ps << " K=" << K << " " << dtype_name(t) << " r=" << r << " c=" << c;
          }
        }
      }
    }
  }
  const Pattern p = *Pattern::parse("6:8");
  EXPECT_EQ(lift_source_index(-1, 8, p), -1);
  EXPECT_EQ(lift_source_index(12, 8, p), -1);
  EXPECT_EQ(lift_source_index(12, 9, p), 8);   // block 1 window 0 lane 0
  EXPECT_EQ(lift_source_index(13, 9, p), -1);  // source 9 >= K
}

TEST(Slide, BadShapesAndDTypesAreErrors) {
  const Pattern p = *Pattern::parse("6:8");
  std::vector<float> w(16, 0.0f), out(24, 0.0f);
  Status s = slide_weights(DType::kF32, w.data(), 1, 16, p, out.data(), 23);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("expected >= K' = 24"), std::string::npos) << s.message();
  EXPECT_FALSE(lift_activations(DType::kF32, w.data(), 1, 16, p, out.data(), 20).ok());
  EXPECT_EQ(slide_weights(DType::kI32, w.data(), 1, 4, p, out.data(), 24).code(),
            StatusCode::kUnsupported);
  EXPECT_EQ(lift_activations(DType::kF64, w.data(), 1, 4, p, out.data(), 24).code(),
            StatusCode::kUnsupported);
  EXPECT_FALSE(slide_weights(DType::kF32, w.data(), 1, 16, Pattern{7, 8}, out.data(), 24).ok());
  EXPECT_FALSE(slide_weights(DType::kF32, w.data(), -1, 16, p, out.data(), 24).ok());
}
