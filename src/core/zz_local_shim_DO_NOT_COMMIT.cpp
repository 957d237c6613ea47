// LOCAL ONLY (not committed): minimal core functions so the CUDA benchmark links before the core
// branch lands. Deleted once main has the real implementations.
#include <cmath>
#include <cstring>
#include <string>

#include "slidesparse/dtype.h"
#include "slidesparse/nm_tensor.h"
#include "slidesparse/pattern.h"
#include "slidesparse/quant.h"

namespace slidesparse {
size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kI32:
    case DType::kU32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
    case DType::kI16:
    case DType::kU16:
      return 2;
    case DType::kI64:
    case DType::kF64:
      return 8;
    default:
      return 1;
  }
}
const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kF8E4M3:
      return "F8_E4M3";
    case DType::kI8:
      return "I8";
    case DType::kI32:
      return "I32";
    default:
      return "?";
  }
}
uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return (u >> 16) | 0x40;
  u += 0x7fff + ((u >> 16) & 1);
  return u >> 16;
}
float bf16_to_float(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t float_to_fp16(float f) {
  // via _Float16 (RNE)
  _Float16 h = (_Float16)f;
  uint16_t r;
  std::memcpy(&r, &h, 2);
  return r;
}
float fp16_to_float(uint16_t v) {
  _Float16 h;
  std::memcpy(&h, &v, 2);
  return (float)h;
}
float e4m3_to_float(uint8_t v) {
  int s = v >> 7, e = (v >> 3) & 15, m = v & 7;
  if ((v & 0x7f) == 0x7f) return NAN;
  float r = e == 0 ? std::ldexp((float)m, -9) : std::ldexp(1.0f + m / 8.0f, e - 7);
  return s ? -r : r;
}
uint8_t float_to_e4m3(float f) {
  if (std::isnan(f)) return std::signbit(f) ? 0xff : 0x7f;
  uint8_t sign = std::signbit(f) ? 0x80 : 0;
  float a = std::fabs(f);
  if (a >= 448.0f) return sign | 0x7e;
  // brute force nearest-even over the 127 codes
  int best = 0;
  float bd = INFINITY;
  for (int c = 0; c < 0x7f; ++c) {
    float d = std::fabs(e4m3_to_float(c) - a);
    if (d < bd || (d == bd && (c & 1) == 0)) {
      bd = d;
      best = c;
    }
  }
  return sign | best;
}
Status convert_from_f32(DType t, const float* src, void* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (t == DType::kBF16)
      ((uint16_t*)dst)[i] = float_to_bf16(src[i]);
    else if (t == DType::kF16)
      ((uint16_t*)dst)[i] = float_to_fp16(src[i]);
    else
      return unsupported("shim");
  }
  return Status::Ok();
}
std::string Pattern::str() const {
  return std::to_string(n) + ":" + std::to_string(m);
}
Status Pattern::validate(int n, int m) {
  if (m % 2 || m < 4 || m > 16 || n < 1 || n > m - 2) return invalid_argument("pattern");
  return Status::Ok();
}
Expected<Pattern> Pattern::parse(std::string_view t) {
  auto c = t.find(':');
  if (c == std::string_view::npos) return invalid_argument("pattern '" + std::string(t) + "'");
  int n = std::stoi(std::string(t.substr(0, c))), m = std::stoi(std::string(t.substr(c + 1)));
  SS_RETURN_IF_ERROR(validate(n, m));
  return Pattern{n, m};
}
QuantMode NmTensor::quant() const {
  return value_dtype == DType::kI8       ? QuantMode::kInt8
         : value_dtype == DType::kF8E4M3 ? QuantMode::kFp8
                                         : QuantMode::kNone;
}
Status nm_verify(const NmTensor& t) {
  for (size_t i = 0; i < t.masks.size(); ++i)
    if (__builtin_popcount(t.masks[i]) != t.pattern.n || (t.masks[i] >> t.pattern.m))
      return invalid_argument("mask");
  return Status::Ok();
}
void nm_unpack(const NmTensor& t, void* dense) {
  size_t es = dtype_size(t.value_dtype);
  int64_t blocks = t.blocks();
  std::memset(dense, 0, t.N * t.K * es);
  for (int64_t r = 0; r < t.N; ++r)
    for (int64_t b = 0; b < blocks; ++b) {
      int idx = 0;
      for (int k = 0; k < t.pattern.m; ++k)
        if (t.masks[r * blocks + b] >> k & 1) {
          int64_t col = b * t.pattern.m + k;
          const uint8_t* v = t.values.data() + ((r * blocks + b) * t.pattern.n + idx++) * es;
          if (col < t.K) std::memcpy((uint8_t*)dense + (r * t.K + col) * es, v, es);
        }
    }
}
void quantize_rows(QuantMode q, const float* x, int64_t rows, int64_t cols, void* out,
                   float* scales) {
  float qmax = q == QuantMode::kInt8 ? 127.0f : 448.0f;
  for (int64_t r = 0; r < rows; ++r) {
    float am = 0;
    for (int64_t c = 0; c < cols; ++c) am = std::fmax(am, std::fabs(x[r * cols + c]));
    float s = am > 0 ? am / qmax : 1.0f;
    scales[r] = s;
    for (int64_t c = 0; c < cols; ++c) {
      float v = x[r * cols + c] / s;
      if (q == QuantMode::kInt8)
        ((int8_t*)out)[r * cols + c] =
            (int8_t)std::fmin(std::fmax(std::nearbyint(v), -127.f), 127.f);
      else
        ((uint8_t*)out)[r * cols + c] = float_to_e4m3(v);
    }
  }
}
}  // namespace slidesparse
