// Symmetric per-row quantization, in plain IEEE fp32 (the GPU kernels reproduce it bit for bit):
// scale = absmax / qmax (1.0 if the row is all zero); int8: q = nearbyint(v / scale) (round half
// to even under the default rounding mode) clamped to [-127, 127]; fp8: q = e4m3(v / scale).
#include "slidesparse/quant.h"

#include <cmath>
#include <string>

namespace slidesparse {

Expected<QuantMode> quant_mode_parse(std::string_view s) {
  if (s == "none") return QuantMode::kNone;
  if (s == "int8") return QuantMode::kInt8;
  if (s == "fp8") return QuantMode::kFp8;
  return invalid_argument("invalid quant mode \"" + std::string(s) +
                          "\": expected none, int8 or fp8");
}

const char* quant_mode_name(QuantMode q) {
  switch (q) {
    case QuantMode::kInt8:
      return "int8";
    case QuantMode::kFp8:
      return "fp8";
    default:
      return "none";
  }
}

DType quant_storage_dtype(QuantMode q) {
  switch (q) {
    case QuantMode::kInt8:
      return DType::kI8;
    case QuantMode::kFp8:
      return DType::kF8E4M3;
    default:
      return DType::kF32;
  }
}

float quant_qmax(QuantMode q) {
  return q == QuantMode::kFp8 ? kE4M3Max : kInt8Max;
}

float quant_row_scale(QuantMode q, const float* row, int64_t cols) {
  float amax = 0.0f;
  for (int64_t i = 0; i < cols; ++i) {
    const float a = std::fabs(row[i]);
    if (a > amax) amax = a;  // NaN never wins
  }
  if (amax == 0.0f) return 1.0f;
  return amax / quant_qmax(q);
}

int8_t quantize_int8(float v, float scale) {
  const float r = std::nearbyint(v / scale);
  if (!(r == r)) return 0;  // NaN
  if (r >= 127.0f) return 127;
  if (r <= -127.0f) return -127;
  return static_cast<int8_t>(r);
}

uint8_t quantize_fp8(float v, float scale) {
  return float_to_e4m3(v / scale);
}

void quantize_rows(QuantMode q, const float* x, int64_t rows, int64_t cols, void* out,
                   float* scales) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    const float s = quant_row_scale(q, row, cols);
    scales[r] = s;
    if (q == QuantMode::kFp8) {
      uint8_t* o = static_cast<uint8_t*>(out) + r * cols;
      for (int64_t i = 0; i < cols; ++i) o[i] = quantize_fp8(row[i], s);
    } else {
      int8_t* o = static_cast<int8_t*>(out) + r * cols;
      for (int64_t i = 0; i < cols; ++i) o[i] = quantize_int8(row[i], s);
    }
  }
}

}  // namespace slidesparse
