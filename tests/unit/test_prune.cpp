// Pruning: exactly n kept per block, the selection rule (largest scores, ties to the lower
// position, padding scores 0, -0.0 is zero) checked against an independent sort, Wanda vs
// magnitude, and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "slidesparse/prune.h"

using namespace slidesparse;

namespace {

// Expected mask of one block by sorting positions (score desc, position asc) and taking n.
uint16_t expected_mask(const float* row, const float* norms, int64_t K, int64_t k0, Pattern p) {
  std::vector<std::pair<double, int>> s;
  for (int i = 0; i < p.m; ++i) {
    const int64_t k = k0 + i;
    double v = k < K ? std::fabs(static_cast<double>(row[k])) : 0.0;
    if (norms && k < K) v = static_cast<double>(std::fabs(row[k]) * norms[k]);
    s.push_back({v, i});
  }
  std::sort(s.begin(), s.end(), [](auto a, auto b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  uint16_t m = 0;
  for (int i = 0; i < p.n; ++i) m |= static_cast<uint16_t>(1u << s[i].second);
  return m;
}

int popcount(uint32_t v) {
  int c = 0;
  for (; v; v &= v - 1) ++c;
  return c;
}

}  // namespace

TEST(Prune, ExactlyNPerBlockAndMatchesIndependentSort) {
  std::mt19937 rng(123);
  // Values drawn from a small set so that ties happen often.
  std::uniform_int_distribution<int> d(-4, 4);
  std::uniform_real_distribution<float> nd(0.0f, 3.0f);
  for (const char* ps : {"2:4", "4:6", "6:8", "5:8", "2:8", "8:10", "14:16", "1:16"}) {
    const Pattern p = *Pattern::parse(ps);
    for (int64_t K : {1, 7, p.m, 3 * p.m + 1, 101}) {
      const int64_t N = 23;
      std::vector<float> w(N * K), norms(K);
      for (auto& v : w) v = static_cast<float>(d(rng)) * 0.5f;
      for (auto& v : norms) v = std::round(nd(rng));
      for (PruneMethod method : {PruneMethod::kMagnitude, PruneMethod::kWanda}) {
        const float* nrm = method == PruneMethod::kWanda ? norms.data() : nullptr;
        auto masks = prune_select(w.data(), N, K, p, method, nrm);
        ASSERT_TRUE(masks.ok()) << masks.status().message();
        ASSERT_EQ(static_cast<int64_t>(masks->size()), N * p.blocks(K));
        for (int64_t r = 0; r < N; ++r) {
          for (int64_t b = 0; b < p.blocks(K); ++b) {
            const uint16_t mk = (*masks)[r * p.blocks(K) + b];
            ASSERT_EQ(popcount(mk), p.n) << ps << " K=" << K;
            ASSERT_EQ(mk, expected_mask(&w[r * K], nrm, K, b * p.m, p))
                << ps << " K=" << K << " row " << r << " block " << b;
          }
        }
        std::vector<float> pruned = w;
        prune_apply(pruned.data(), N, K, p, masks->data());
        for (int64_t i = 0; i < N * K; ++i) {
          const bool kept = (*masks)[(i / K) * p.blocks(K) + (i % K) / p.m] & (1u << (i % K % p.m));
          ASSERT_EQ(pruned[i], kept ? w[i] : 0.0f);
        }
        auto holds = pattern_holds(DType::kF32, pruned.data(), N, K, p);
        ASSERT_TRUE(holds.ok());
        EXPECT_TRUE(*holds);
      }
    }
  }
}

TEST(Prune, TiesGoToTheLowerPositionAndNegativeZeroIsZero) {
  const Pattern p = *Pattern::parse("6:8");
  const float all_equal[8] = {1, -1, 1, -1, 1, -1, 1, -1};
  EXPECT_EQ((*prune_select(all_equal, 1, 8, p, PruneMethod::kMagnitude, nullptr))[0], 0x3f);
  // Two zeros to drop, but +0.0 and -0.0 tie with each other: the higher positions are dropped.
  const float zeros[8] = {-0.0f, 0.0f, 5, 6, -0.0f, 7, 0.0f, 8};
  EXPECT_EQ((*prune_select(zeros, 1, 8, p, PruneMethod::kMagnitude, nullptr))[0],
            0xff & ~(1u << 4) & ~(1u << 6));
  // |-2| == |2|: the tie at the boundary keeps the lower position.
  const float tie[8] = {9, 9, 9, 9, 9, 2, -2, 1};
  EXPECT_EQ((*prune_select(tie, 1, 8, p, PruneMethod::kMagnitude, nullptr))[0], 0x3f);
  const float tie2[4] = {-3, 1, 3, 2};  // 2:4: |-3| == |3| both kept
  EXPECT_EQ(
      (*prune_select(tie2, 1, 4, *Pattern::parse("2:4"), PruneMethod::kMagnitude, nullptr))[0],
      0x5);
}

TEST(Prune, PaddingScoresZeroAndMayBeSelected) {
  const Pattern p = *Pattern::parse("6:8");
  // K = 5: positions 5..7 are padding with score 0; the real zero at 0 is kept over padding 5
  // (same score, lower position), padding 6 and 7 are dropped.
  const float w[5] = {0, 1, 2, 3, 4};
  EXPECT_EQ((*prune_select(w, 1, 5, p, PruneMethod::kMagnitude, nullptr))[0], 0x3f);
  // K = 2 of 2:4: the two real values are kept.
  const float w2[2] = {1, 2};
  EXPECT_EQ((*prune_select(w2, 1, 2, *Pattern::parse("2:4"), PruneMethod::kMagnitude, nullptr))[0],
            0x3);
  // K = 9 of 2:8: block 1 holds one real column; it and one padding position are kept.
  const float w3[9] = {1, 2, 3, 4, 5, 6, 7, 8, -0.5f};
  auto m3 = *prune_select(w3, 1, 9, *Pattern::parse("2:8"), PruneMethod::kMagnitude, nullptr);
  EXPECT_EQ(m3[0], 0xc0);
  EXPECT_EQ(m3[1], 0x3);
}

TEST(Prune, WandaDiffersFromMagnitudeWhenNormsDiffer) {
  const Pattern p = *Pattern::parse("6:8");
  const float w[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const float norms[8] = {10, 10, 1, 1, 1, 1, 0.1f, 0.1f};
  const uint16_t mag = (*prune_select(w, 1, 8, p, PruneMethod::kMagnitude, nullptr))[0];
  const uint16_t wan = (*prune_select(w, 1, 8, p, PruneMethod::kWanda, norms))[0];
  EXPECT_EQ(mag, 0xfc);  // drops 1, 2
  EXPECT_EQ(wan, 0x3f);  // scores 10 20 3 4 5 6 .7 .8: drops 7 and 8
  // Equal norms: Wanda == magnitude on random data.
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::vector<float> wr(17 * 50), ones(50, 2.0f);
  for (auto& v : wr) v = nd(rng);
  EXPECT_EQ(*prune_select(wr.data(), 17, 50, p, PruneMethod::kMagnitude, nullptr),
            *prune_select(wr.data(), 17, 50, p, PruneMethod::kWanda, ones.data()));
}

TEST(Prune, BadInputIsOneClearError) {
  const Pattern p = *Pattern::parse("6:8");
  std::vector<float> w(3 * 16, 1.0f), norms(16, 1.0f);
  const std::vector<float> w_copy = w;
  auto no_norms = prune_select(w.data(), 3, 16, p, PruneMethod::kWanda, nullptr);
  ASSERT_FALSE(no_norms.ok());
  EXPECT_NE(no_norms.status().message().find("expected 16 activation norms"), std::string::npos)
      << no_norms.status().message();
  auto short_norms = prune_select(w.data(), 3, 16, p, PruneMethod::kWanda, norms.data(), 15);
  ASSERT_FALSE(short_norms.ok());
  EXPECT_NE(short_norms.status().message().find("got 15"), std::string::npos);
  EXPECT_FALSE(prune_select(w.data(), 3, 16, p, PruneMethod::kWanda, norms.data(), 17).ok());
  EXPECT_TRUE(prune_select(w.data(), 3, 16, p, PruneMethod::kWanda, norms.data(), 16).ok());
  EXPECT_FALSE(prune_select(w.data(), 3, 16, p, PruneMethod::kMagnitude, norms.data()).ok());
  norms[3] = -1.0f;
  auto neg = prune_select(w.data(), 3, 16, p, PruneMethod::kWanda, norms.data());
  ASSERT_FALSE(neg.ok());
  EXPECT_NE(neg.status().message().find("input channel 3"), std::string::npos);
  norms[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(prune_select(w.data(), 3, 16, p, PruneMethod::kWanda, norms.data()).ok());
  w[1 * 16 + 9] = std::numeric_limits<float>::infinity();
  auto inf = prune_select(w.data(), 3, 16, p, PruneMethod::kMagnitude, nullptr);
  ASSERT_FALSE(inf.ok());
  EXPECT_NE(inf.status().message().find("row 1, column 9"), std::string::npos)
      << inf.status().message();
  EXPECT_FALSE(prune_select(w.data(), 3, 16, Pattern{7, 8}, PruneMethod::kMagnitude, nullptr).ok());
  EXPECT_FALSE(prune_select(w.data(), -1, 16, p, PruneMethod::kMagnitude, nullptr).ok());
  w[1 * 16 + 9] = 1.0f;
  EXPECT_EQ(w, w_copy);  // input never modified
  EXPECT_EQ(prune_method_parse("wanda").value(), PruneMethod::kWanda);
  EXPECT_EQ(prune_method_parse("magnitude").value(), PruneMethod::kMagnitude);
  EXPECT_FALSE(prune_method_parse("sparsegpt").ok());
}

TEST(Prune, PatternHoldsCountsNonzerosPerBlock) {
  const Pattern p = *Pattern::parse("6:8");
  float w[10] = {1, 2, 3, 4, 5, 6, 0, -0.0f, 1, 1};
  EXPECT_TRUE(*pattern_holds(DType::kF32, w, 1, 10, p));
  w[7] = 1e-30f;  // 7 nonzeros in block 0
  EXPECT_FALSE(*pattern_holds(DType::kF32, w, 1, 10, p));
  // bf16 codes: 0x8000 is -0.0 (zero), 0x0001 a subnormal (nonzero).
  uint16_t h[8] = {0x3f80, 0x3f80, 0x3f80, 0x3f80, 0x3f80, 0x3f80, 0x8000, 0x8000};
  EXPECT_TRUE(*pattern_holds(DType::kBF16, h, 1, 8, p));
  h[6] = 0x0001;
  EXPECT_FALSE(*pattern_holds(DType::kBF16, h, 1, 8, p));
  const uint8_t f8[4] = {0x80, 0x80, 0x38, 0x38};
  EXPECT_TRUE(*pattern_holds(DType::kF8E4M3, f8, 1, 4, *Pattern::parse("2:4")));
  const int8_t i8[4] = {-128, 0, 1, 0};  // int8 has no negative zero: -128 is nonzero
  EXPECT_TRUE(*pattern_holds(DType::kI8, i8, 1, 4, *Pattern::parse("2:4")));
  const int8_t i8b[4] = {-128, 0, 1, 1};
  EXPECT_FALSE(*pattern_holds(DType::kI8, i8b, 1, 4, *Pattern::parse("2:4")));
  EXPECT_FALSE(pattern_holds(DType::kF64, w, 1, 1, p).ok());
}
