// Slide of weights and lift of activations: the DESIGN example (smoke test; exhaustive checks
// below).
#include <gtest/gtest.h>

#include <vector>

#include "slidesparse/slide.h"

using namespace slidesparse;

TEST(Slide, DesignExample68) {
  Pattern p = *Pattern::parse("6:8");
  const std::vector<float> w = {1, 0, 3, 4, 0, 6, 7, 8};
  std::vector<float> out(12, -99.0f);
  ASSERT_TRUE(slide_weights(DType::kF32, w.data(), 1, 8, p, out.data(), 12).ok());
  EXPECT_EQ(out, (std::vector<float>{1, 0, 3, 0, 0, 4, 0, 6, 0, 0, 7, 8}));
  const std::vector<int> expect_src = {0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7};
  for (int kp = 0; kp < 12; ++kp) EXPECT_EQ(lift_source_index(kp, 8, p), expect_src[kp]);
}
