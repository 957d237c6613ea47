// Reference sparse linear (slide + lift) against the dense linear on the pruned weights.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "slidesparse/reference.h"

using namespace slidesparse;

TEST(ReferenceLinear, Int8SparseEqualsDenseSmoke) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  const int64_t M = 7, N = 19, K = 45;
  std::vector<float> x(M * K), w(N * K), bias(N);
  for (auto& v : x) v = nd(rng);
  for (auto& v : w) v = nd(rng);
  for (auto& v : bias) v = nd(rng);
  Pattern p = *Pattern::parse("6:8");
  auto t = nm_compress(w.data(), N, K, p, PruneMethod::kMagnitude, nullptr, QuantMode::kInt8,
                       DType::kBF16);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  // Dense pruned fp32 weight: prune the same way.
  auto masks = prune_select(w.data(), N, K, p, PruneMethod::kMagnitude, nullptr);
  ASSERT_TRUE(masks.ok());
  std::vector<float> wp = w;
  prune_apply(wp.data(), N, K, p, masks->data());
  std::vector<float> ys(M * N, -1), yd(M * N, -2);
  std::vector<int32_t> as(M * N, -1), ad(M * N, -2);
  ASSERT_TRUE(reference_sparse_linear(x.data(), M, *t, bias.data(), ys.data(), as.data()).ok());
  ASSERT_TRUE(reference_dense_linear(x.data(), M, wp.data(), N, K, QuantMode::kInt8, bias.data(),
                                     yd.data(), ad.data())
                  .ok());
  EXPECT_EQ(as, ad);
  EXPECT_EQ(ys, yd);
}
