// Host tensors: shapes, an owning Tensor, and checked getters whose errors name the tensor and the
// expected dtype/shape.
#include "slidesparse/tensor.h"

#include <algorithm>
#include <cstring>

namespace slidesparse {

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r += ",";
    r += std::to_string(s[i]);
  }
  return r + "]";
}

Tensor::Tensor(DType dtype, Shape shape)
    : dtype_(dtype),
      shape_(std::move(shape)),
      bytes_(static_cast<size_t>(shape_numel(shape_)) * dtype_size(dtype), 0) {}

Tensor Tensor::from_view(const TensorView& v) {
  Tensor t(v.dtype, v.shape);
  const size_t n = std::min(t.bytes_.size(), v.nbytes);
  if (n > 0) std::memcpy(t.bytes_.data(), v.data, n);
  return t;
}

Status check_tensor(const std::string& name, const TensorView& t, DType dtype, const Shape& shape) {
  bool ok = t.dtype == dtype;
  if (!shape.empty()) {
    ok = ok && shape.size() == t.shape.size();
    for (size_t i = 0; ok && i < shape.size(); ++i) {
      if (shape[i] != -1 && shape[i] != t.shape[i]) ok = false;
    }
  }
  std::string want_shape = shape.empty() ? "any" : shape_str(shape);
  for (size_t p = want_shape.find("-1"); p != std::string::npos; p = want_shape.find("-1")) {
    want_shape.replace(p, 2, "*");
  }
  if (!ok) {
    return invalid_argument("tensor '" + name + "': expected dtype=" + dtype_name(dtype) +
                            " shape=" + want_shape + ", got dtype=" + dtype_name(t.dtype) +
                            " shape=" + shape_str(t.shape));
  }
  for (int64_t d : t.shape) {
    if (d < 0)
      return format_error("tensor '" + name + "': negative dimension in " + shape_str(t.shape));
  }
  const size_t want = static_cast<size_t>(t.numel()) * dtype_size(t.dtype);
  if (t.nbytes != want) {
    return format_error("tensor '" + name + "': expected " + std::to_string(want) + " bytes for " +
                        dtype_name(t.dtype) + " " + shape_str(t.shape) + ", got " +
                        std::to_string(t.nbytes));
  }
  return Status::Ok();
}

Expected<std::vector<float>> tensor_to_f32(const std::string& name, const TensorView& t) {
  if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16 &&
      t.dtype != DType::kF8E4M3) {
    return unsupported("tensor '" + name +
                       "': expected a float dtype (F32, F16, BF16, F8_E4M3), got " +
                       dtype_name(t.dtype));
  }
  for (int64_t d : t.shape) {
    if (d < 0)
      return format_error("tensor '" + name + "': negative dimension in " + shape_str(t.shape));
  }
  const int64_t n = t.numel();
  if (t.nbytes != static_cast<size_t>(n) * dtype_size(t.dtype)) {
    return format_error("tensor '" + name + "': expected " +
                        std::to_string(static_cast<size_t>(n) * dtype_size(t.dtype)) +
                        " bytes for " + dtype_name(t.dtype) + " " + shape_str(t.shape) + ", got " +
                        std::to_string(t.nbytes));
  }
  std::vector<float> out(static_cast<size_t>(n));
  SS_RETURN_IF_ERROR(convert_to_f32(t.dtype, t.data, out.data(), n));
  return out;
}

}  // namespace slidesparse
