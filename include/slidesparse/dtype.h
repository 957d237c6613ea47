// Element types and exact software conversions (bf16, fp16, fp8 e4m3).
// All float -> narrow conversions round to nearest even; fp8 e4m3 saturates to +-448 (finite-only
// format, NaN = 0x7f/0xff). bf16/fp16 keep inf and NaN.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "slidesparse/status.h"

namespace slidesparse {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kF8E4M3,
  kI8,
  kU8,
  kI16,
  kU16,
  kI32,
  kU32,
  kI64,
  kF64,
  kBool,
};

size_t dtype_size(DType t);
// Safetensors spelling: "F32", "F16", "BF16", "F8_E4M3", "I8", "U8", "I16", "U16", "I32", "U32",
// "I64", "F64", "BOOL".
const char* dtype_name(DType t);
Expected<DType> dtype_from_name(std::string_view name);
bool dtype_is_float(DType t);

// Scalar conversions. Bit patterns are carried in unsigned integers.
uint16_t float_to_bf16(float f);
float bf16_to_float(uint16_t h);
uint16_t float_to_fp16(float f);
float fp16_to_float(uint16_t h);
uint8_t float_to_e4m3(float f);  // RNE, saturating to +-448, NaN -> 0x7f (sign kept)
float e4m3_to_float(uint8_t v);

constexpr float kE4M3Max = 448.0f;
constexpr float kInt8Max = 127.0f;

// Bulk conversions between a typed buffer and fp32 (src/dst are raw element arrays of dtype t).
// Supported t: F32, F16, BF16, F8_E4M3, I8, I32 (as values). Returns kUnsupported otherwise.
Status convert_to_f32(DType t, const void* src, float* dst, int64_t count);
Status convert_from_f32(DType t, const float* src, void* dst, int64_t count);

}  // namespace slidesparse
