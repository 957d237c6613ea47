// Host tensors: an owning Tensor and a non-owning TensorView (e.g. into an mmap'd safetensors
// file). Row-major, contiguous. Getters check dtype and shape and say what was expected.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slidesparse/dtype.h"
#include "slidesparse/status.h"

namespace slidesparse {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);  // "[4096,4096]"

struct TensorView {
  DType dtype = DType::kF32;
  Shape shape;
  const void* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const { return shape_numel(shape); }
  template <class T>
  const T* as() const {
    return static_cast<const T*>(data);
  }
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, Shape shape);              // zero-filled
  static Tensor from_view(const TensorView& v);  // deep copy

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return bytes_.size(); }
  void* data() { return bytes_.data(); }
  const void* data() const { return bytes_.data(); }
  template <class T>
  T* as() {
    return reinterpret_cast<T*>(bytes_.data());
  }
  template <class T>
  const T* as() const {
    return reinterpret_cast<const T*>(bytes_.data());
  }
  TensorView view() const { return {dtype_, shape_, bytes_.data(), bytes_.size()}; }

 private:
  DType dtype_ = DType::kF32;
  Shape shape_;
  std::vector<uint8_t> bytes_;
};

// "tensor 'model.layers.0.mlp.up_proj.weight': expected dtype=BF16 shape=[8192,2048], got
// dtype=F32 shape=[8192,2048]". An empty expected shape accepts any shape; -1 is a wildcard dim.
Status check_tensor(const std::string& name, const TensorView& t, DType dtype, const Shape& shape);

// Convert any float tensor view (F32/F16/BF16/F8_E4M3) to an owned fp32 vector.
Expected<std::vector<float>> tensor_to_f32(const std::string& name, const TensorView& t);

}  // namespace slidesparse
