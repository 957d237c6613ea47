// The compact n:m tensor: layout of values and masks, pack/unpack round trips for every value
// dtype, nm_verify catching each kind of corruption, and nm_compress (prune -> quantize -> pack).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "slidesparse/nm_tensor.h"

using namespace slidesparse;

TEST(NmTensor, LayoutOfTheDesignExample) {
  const Pattern p = *Pattern::parse("6:8");
  const std::vector<float> w = {1, 0, 3, 4, 0, 6, 7, 8, 9, 9, 9, 9};  // K = 12: 2 blocks
  auto masks = prune_select(w.data(), 1, 12, p, PruneMethod::kMagnitude, nullptr);
  ASSERT_TRUE(masks.ok());
  // block 0: the two zeros (positions 1, 4) dropped -> 0b11101101; block 1: 4 real + 2 padding.
  EXPECT_EQ((*masks)[0], 0xed);
  EXPECT_EQ((*masks)[1], 0x3f);
  std::vector<int8_t> dense(w.begin(), w.end());
  auto t = nm_pack(DType::kI8, dense.data(), 1, 12, p, masks->data());
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->values_per_row(), 12);
  const std::vector<uint8_t> want = {1, 3, 4, 6, 7, 8, 9, 9, 9, 9, 0, 0};
  EXPECT_EQ(t->values, want);
  EXPECT_EQ(t->mask_dtype(), DType::kU8);
  EXPECT_EQ(t->quant(), QuantMode::kInt8);
  t->scales = {1.0f};
  EXPECT_TRUE(nm_verify(*t).ok());
  NmTensor big;
  big.pattern = *Pattern::parse("8:10");
  EXPECT_EQ(big.mask_dtype(), DType::kU16);
}

TEST(NmTensor, PackUnpackRoundTripEveryValueDTypeAndPattern) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  for (const char* ps : {"2:4", "4:6", "6:8", "5:8", "8:10", "14:16"}) {
    const Pattern p = *Pattern::parse(ps);
    for (int64_t K : {p.m, 37}) {
      const int64_t N = 11;
      std::vector<float> w(N * K);
      for (auto& v : w) v = nd(rng);
      auto masks = prune_select(w.data(), N, K, p, PruneMethod::kMagnitude, nullptr);
      ASSERT_TRUE(masks.ok());
      prune_apply(w.data(), N, K, p, masks->data());
      for (DType t : {DType::kBF16, DType::kF16, DType::kF8E4M3, DType::kI8}) {
        const size_t es = dtype_size(t);
        std::vector<uint8_t> dense(N * K * es);
        std::vector<float> scaled(w);
        for (auto& v : scaled) v *= 50.0f;  // int8: mostly nonzero after rounding
        ASSERT_TRUE(convert_from_f32(t, scaled.data(), dense.data(), N * K).ok());
        auto nm = nm_pack(t, dense.data(), N, K, p, masks->data());
        ASSERT_TRUE(nm.ok()) << ps << " " << dtype_name(t) << ": " << nm.status().message();
        if (t == DType::kI8 || t == DType::kF8E4M3) nm->scales.assign(N, 0.5f);
        ASSERT_TRUE(nm_verify(*nm).ok()) << nm_verify(*nm).message();
        std::vector<uint8_t> back(dense.size(), 0xcd);
        nm_unpack(*nm, back.data());
        ASSERT_EQ(back, dense) << ps << " K=" << K << " " << dtype_name(t);
      }
    }
  }
}

TEST(NmTensor, VerifyCatchesEveryCorruption) {
  const Pattern p = *Pattern::parse("4:6");
  std::mt19937 rng(4);
  std::normal_distribution<float> nd;
  const int64_t N = 5, K = 13;  // 3 blocks, the last with 5 padding positions
  std::vector<float> w(N * K);
  for (auto& v : w) v = nd(rng);
  auto good = nm_compress(w.data(), N, K, p, PruneMethod::kMagnitude, nullptr, QuantMode::kInt8,
                          DType::kBF16);
  ASSERT_TRUE(good.ok());
  ASSERT_TRUE(nm_verify(*good).ok());
  auto expect_bad = [&](NmTensor t, const char* needle) {
    Status s = nm_verify(t);
    ASSERT_FALSE(s.ok()) << needle;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find('\n'), std::string::npos);
  };
  NmTensor t = *good;
  t.masks[4] = 0x0f | 0x10;  // popcount 5
  expect_bad(t, "row 1, block 1: 5 positions selected, expected 4");
  t = *good;
  t.masks[2] = 0x47;  // bit 6 is beyond m = 6
  expect_bad(t, "bits set beyond position 5");
  t = *good;
  t.values.pop_back();
  expect_bad(t, "values hold");
  t = *good;
  t.masks.push_back(0x0f);
  expect_bad(t, "masks, expected 15");
  t = *good;
  t.scales.resize(4);
  expect_bad(t, "weight scales, expected 5");
  t = *good;
  t.scales[3] = 0.0f;
  expect_bad(t, "weight scale of row 3");
  t = *good;
  t.scales[0] = std::nanf("");
  expect_bad(t, "weight scale of row 0");
  t = *good;
  t.value_dtype = DType::kF32;
  expect_bad(t, "value dtype F32");
  t = *good;
  t.pattern = Pattern{5, 6};
  expect_bad(t, "n must be <= m-2");
  // A selected padding position storing a nonzero: row 2, last block (positions 12..17; K = 13).
  t = *good;
  const int64_t b = 2;
  const uint32_t mk = t.masks[2 * 3 + b];
  int v = 0, pad_slot = -1;
  for (int i = 0; i < 6; ++i) {
    if (!(mk & (1u << i))) continue;
    if (i >= 1 && pad_slot < 0) pad_slot = v;
    ++v;
  }
  ASSERT_GE(pad_slot, 0);
  t.values[2 * t.values_per_row() + b * 4 + pad_slot] = 7;
  expect_bad(t, "padding position");
}

TEST(NmTensor, PackRejectsBadInputWithoutPartialOutput) {
  const Pattern p = *Pattern::parse("2:4");
  const int8_t dense[8] = {1, 2, 0, 0, 0, 3, 4, 5};
  const uint16_t masks[2] = {0x3, 0x6};  // row 0 block 1: position 3 (value 5) not selected
  auto r = nm_pack(DType::kI8, dense, 1, 8, p, masks);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("row 0, column 7 is nonzero but not selected"),
            std::string::npos)
      << r.status().message();
  const uint16_t bad_pop[2] = {0x3, 0x7};
  EXPECT_FALSE(nm_pack(DType::kI8, dense, 1, 8, p, bad_pop).ok());
  const uint16_t ok_masks[2] = {0x3, 0xc};
  const int8_t dense2[8] = {1, 2, 0, 0, 0, 0, 4, 5};
  EXPECT_TRUE(nm_pack(DType::kI8, dense2, 1, 8, p, ok_masks).ok());
  EXPECT_EQ(nm_pack(DType::kF32, dense2, 1, 2, p, ok_masks).status().code(),
            StatusCode::kUnsupported);
}

TEST(NmTensor, CompressMatchesPruneThenQuantize) {
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  const Pattern p = *Pattern::parse("6:8");
  const int64_t N = 31, K = 45;
  std::vector<float> w(N * K), norms(K);
  for (auto& v : w) v = nd(rng);
  for (auto& v : norms) v = std::fabs(nd(rng)) * 100.0f;
  w[5 * K + 3] = 0.0f;
  for (PruneMethod method : {PruneMethod::kMagnitude, PruneMethod::kWanda}) {
    const float* nrm = method == PruneMethod::kWanda ? norms.data() : nullptr;
    auto masks = *prune_select(w.data(), N, K, p, method, nrm);
    std::vector<float> pruned = w;
    prune_apply(pruned.data(), N, K, p, masks.data());
    const std::vector<float> w_before = w;
    for (QuantMode q : {QuantMode::kNone, QuantMode::kInt8, QuantMode::kFp8}) {
      for (DType fd : {DType::kBF16, DType::kF16}) {
        auto t = nm_compress(w.data(), N, K, p, method, nrm, q, fd);
        ASSERT_TRUE(t.ok()) << t.status().message();
        ASSERT_EQ(w, w_before);
        ASSERT_TRUE(nm_verify(*t).ok());
        EXPECT_EQ(t->masks, masks);
        EXPECT_EQ(t->quant(), q);
        const std::vector<float> d = nm_to_dense_f32(*t);
        for (int64_t r = 0; r < N; ++r) {
          for (int64_t k = 0; k < K; ++k) {
            const float v = pruned[r * K + k], got = d[r * K + k];
            if (q == QuantMode::kNone) {
              const float want = fd == DType::kBF16 ? bf16_to_float(float_to_bf16(v))
                                                    : fp16_to_float(float_to_fp16(v));
              ASSERT_EQ(got, want);
            } else if (q == QuantMode::kInt8) {
              ASSERT_EQ(got, static_cast<float>(quantize_int8(v, t->scales[r])) * t->scales[r]);
            } else {
              ASSERT_EQ(got, e4m3_to_float(quantize_fp8(v, t->scales[r])) * t->scales[r]);
            }
            if (v == 0.0f) ASSERT_EQ(got, 0.0f);
          }
          if (q != QuantMode::kNone) {
            ASSERT_EQ(t->scales[r], quant_row_scale(q, &pruned[r * K], K));
          } else {
            ASSERT_TRUE(t->scales.empty());
          }
        }
      }
    }
  }
  EXPECT_FALSE(nm_compress(w.data(), N, K, p, PruneMethod::kMagnitude, nullptr, QuantMode::kNone,
                           DType::kF32)
                   .ok());
  EXPECT_FALSE(
      nm_compress(w.data(), N, K, p, PruneMethod::kWanda, nullptr, QuantMode::kInt8, DType::kBF16)
          .ok());
}

// Large enough for several row chunks (and threads): identical to the serial composition of the
// public steps, and an error in a late chunk still names the right row.
TEST(NmTensor, CompressInChunksEqualsSerialSteps) {
  std::mt19937 rng(22);
  std::normal_distribution<float> nd;
  const Pattern p = *Pattern::parse("6:8");
  const int64_t N = 600, K = 4001;  // chunks of 262 rows
  std::vector<float> w(N * K);
  for (auto& v : w) v = nd(rng);
  auto masks = *prune_select(w.data(), N, K, p, PruneMethod::kMagnitude, nullptr);
  std::vector<float> pruned = w;
  prune_apply(pruned.data(), N, K, p, masks.data());
  std::vector<int8_t> codes(N * K);
  std::vector<float> scales(N);
  quantize_rows(QuantMode::kInt8, pruned.data(), N, K, codes.data(), scales.data());
  auto want = nm_pack(DType::kI8, codes.data(), N, K, p, masks.data());
  ASSERT_TRUE(want.ok());
  auto got = nm_compress(w.data(), N, K, p, PruneMethod::kMagnitude, nullptr, QuantMode::kInt8,
                         DType::kBF16);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->masks, want->masks);
  EXPECT_EQ(got->values, want->values);
  EXPECT_EQ(got->scales, scales);
  for (int threads : {1, 3}) {
    auto again = nm_compress(w.data(), N, K, p, PruneMethod::kMagnitude, nullptr, QuantMode::kInt8,
                             DType::kBF16, threads);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->values, want->values) << threads << " threads";
    EXPECT_EQ(again->scales, scales);
  }
  w[(N - 2) * K + 4000] = NAN;
  auto bad = nm_compress(w.data(), N, K, p, PruneMethod::kMagnitude, nullptr, QuantMode::kInt8,
                         DType::kBF16);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("row 598, column 4000"), std::string::npos)
      << bad.status().message();
}

// q|k|v and gate|up fusion: the concatenation unpacks to the row-stacked dense weights, exactly,
// for every value dtype (scales appended), and mismatched parts are refused with a message.
TEST(NmTensor, ConcatRowsStacksDenseRowsAndScales) {
  std::mt19937 rng(31);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  const int64_t K = 37;  // not a multiple of m: padding in the last block
  for (const char* ps : {"2:4", "6:8", "8:10"}) {
    const Pattern p = *Pattern::parse(ps);
    for (QuantMode q : {QuantMode::kNone, QuantMode::kInt8, QuantMode::kFp8}) {
      std::vector<NmTensor> parts;
      std::vector<float> stacked;
      for (int64_t N : {5, 1, 3}) {
        std::vector<float> w(static_cast<size_t>(N * K));
        for (float& x : w) x = nd(rng);
        auto t = nm_compress(w.data(), N, K, p, PruneMethod::kMagnitude, nullptr, q, DType::kBF16);
        ASSERT_TRUE(t.ok()) << t.status().message();
        const std::vector<float> d = nm_to_dense_f32(*t);
        stacked.insert(stacked.end(), d.begin(), d.end());
        parts.push_back(std::move(*t));
      }
      auto cat = nm_concat_rows({&parts[0], &parts[1], &parts[2]});
      ASSERT_TRUE(cat.ok()) << cat.status().message();
      EXPECT_EQ(cat->N, 9);
      EXPECT_EQ(cat->K, K);
      ASSERT_TRUE(nm_verify(*cat).ok()) << nm_verify(*cat).message();
      EXPECT_EQ(cat->scales.size(), q == QuantMode::kNone ? 0u : 9u);
      EXPECT_EQ(nm_to_dense_f32(*cat), stacked) << ps << " " << quant_mode_name(q);
    }
  }
  std::vector<float> w(static_cast<size_t>(4 * 16), 0.5f);
  auto a = nm_compress(w.data(), 4, 16, *Pattern::parse("6:8"), PruneMethod::kMagnitude, nullptr,
                       QuantMode::kInt8, DType::kBF16);
  auto b = nm_compress(w.data(), 4, 16, *Pattern::parse("2:4"), PruneMethod::kMagnitude, nullptr,
                       QuantMode::kInt8, DType::kBF16);
  auto c = nm_compress(w.data(), 2, 32, *Pattern::parse("6:8"), PruneMethod::kMagnitude, nullptr,
                       QuantMode::kInt8, DType::kBF16);
  auto d = nm_compress(w.data(), 4, 16, *Pattern::parse("6:8"), PruneMethod::kMagnitude, nullptr,
                       QuantMode::kFp8, DType::kBF16);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok());
  auto e1 = nm_concat_rows({&*a, &*b});
  ASSERT_FALSE(e1.ok());
  EXPECT_NE(e1.status().message().find("part 1 has pattern 2:4, expected 6:8"), std::string::npos)
      << e1.status().message();
  auto e2 = nm_concat_rows({&*a, &*c});
  ASSERT_FALSE(e2.ok());
  EXPECT_NE(e2.status().message().find("K=32, expected 16"), std::string::npos);
  auto e3 = nm_concat_rows({&*a, &*d});
  ASSERT_FALSE(e3.ok());
  EXPECT_NE(e3.status().message().find("F8_E4M3"), std::string::npos) << e3.status().message();
  EXPECT_FALSE(nm_concat_rows({}).ok());
}
