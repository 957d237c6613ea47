// Host tensors: shape helpers, the checked getter's message, and conversion of float views to fp32.
#include <gtest/gtest.h>

#include <vector>

#include "slidesparse/tensor.h"

using namespace slidesparse;

TEST(Tensor, ShapesAndOwnership) {
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({3, 0, 5}), 0);
  EXPECT_EQ(shape_str({4096, 4096}), "[4096,4096]");
  Tensor t(DType::kBF16, {3, 5});
  EXPECT_EQ(t.nbytes(), 30u);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(t.as<uint16_t>()[i], 0);
  t.as<uint16_t>()[7] = 0x3f80;
  Tensor c = Tensor::from_view(t.view());
  EXPECT_EQ(c.as<uint16_t>()[7], 0x3f80);
  EXPECT_NE(c.data(), t.data());
}

TEST(Tensor, CheckTensorNamesTensorAndExpectation) {
  Tensor t(DType::kF32, {8192, 2048});
  Status s =
      check_tensor("model.layers.0.mlp.up_proj.weight", t.view(), DType::kBF16, {8192, 2048});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(
      s.message(),
      "tensor 'model.layers.0.mlp.up_proj.weight': expected dtype=BF16 shape=[8192,2048], got "
      "dtype=F32 shape=[8192,2048]");
  EXPECT_TRUE(check_tensor("w", t.view(), DType::kF32, {8192, 2048}).ok());
  EXPECT_TRUE(check_tensor("w", t.view(), DType::kF32, {-1, 2048}).ok());
  EXPECT_TRUE(check_tensor("w", t.view(), DType::kF32, {}).ok());
  Status s2 = check_tensor("w", t.view(), DType::kF32, {-1, 1024});
  ASSERT_FALSE(s2.ok());
  EXPECT_NE(s2.message().find("shape=[*,1024]"), std::string::npos) << s2.message();
  EXPECT_FALSE(check_tensor("w", t.view(), DType::kF32, {8192}).ok());
  TensorView short_view = t.view();
  short_view.nbytes -= 4;
  Status s3 = check_tensor("w", short_view, DType::kF32, {8192, 2048});
  ASSERT_FALSE(s3.ok());
  EXPECT_NE(s3.message().find("bytes"), std::string::npos);
}

TEST(Tensor, ToF32ConvertsFloatViewsAndRejectsOthers) {
  const uint16_t bf[3] = {0x3f80, 0xc000, 0x0000};  // 1, -2, 0
  TensorView v{DType::kBF16, {3}, bf, sizeof(bf)};
  auto f = tensor_to_f32("x", v);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f, (std::vector<float>{1.0f, -2.0f, 0.0f}));
  const uint8_t e4[2] = {0x7e, 0x38};  // 448, 1
  auto g = tensor_to_f32("y", TensorView{DType::kF8E4M3, {1, 2}, e4, 2});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(*g, (std::vector<float>{448.0f, 1.0f}));
  const int8_t i8[2] = {1, 2};
  auto h = tensor_to_f32("z", TensorView{DType::kI8, {2}, i8, 2});
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("tensor 'z'"), std::string::npos);
  auto short_buf = tensor_to_f32("s", TensorView{DType::kBF16, {4}, bf, sizeof(bf)});
  ASSERT_FALSE(short_buf.ok());
  EXPECT_NE(short_buf.status().message().find("expected 8 bytes"), std::string::npos)
      << short_buf.status().message();
}
