// Element types and exact software conversions: bf16, fp16 and fp8 e4m3 with round-to-nearest-even.
// Every narrowing conversion works on the fp32 bit pattern with integer arithmetic, so the result
// does not depend on the host FPU's rounding mode or on compiler flags.
#include "slidesparse/dtype.h"

#include <cstring>
#include <string>

namespace slidesparse {

namespace {

uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// v >> s rounded to nearest, ties to even (1 <= s <= 63).
uint64_t shift_rne(uint64_t v, int s) {
  const uint64_t q = v >> s;
  const uint64_t rem = v & ((uint64_t{1} << s) - 1);
  const uint64_t half = uint64_t{1} << (s - 1);
  if (rem > half || (rem == half && (q & 1))) return q + 1;
  return q;
}

struct DTypeInfo {
  DType t;
  const char* name;
  size_t size;
  bool is_float;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kF32, "F32", 4, true},    {DType::kF16, "F16", 2, true},
    {DType::kBF16, "BF16", 2, true},  {DType::kF8E4M3, "F8_E4M3", 1, true},
    {DType::kI8, "I8", 1, false},     {DType::kU8, "U8", 1, false},
    {DType::kI16, "I16", 2, false},   {DType::kU16, "U16", 2, false},
    {DType::kI32, "I32", 4, false},   {DType::kU32, "U32", 4, false},
    {DType::kI64, "I64", 8, false},   {DType::kF64, "F64", 8, true},
    {DType::kBool, "BOOL", 1, false},
};

const DTypeInfo* find_info(DType t) {
  for (const auto& i : kDTypes) {
    if (i.t == t) return &i;
  }
  return nullptr;
}

}  // namespace

size_t dtype_size(DType t) {
  const DTypeInfo* i = find_info(t);
  return i ? i->size : 0;
}

const char* dtype_name(DType t) {
  const DTypeInfo* i = find_info(t);
  return i ? i->name : "?";
}

Expected<DType> dtype_from_name(std::string_view name) {
  for (const auto& i : kDTypes) {
    if (name == i.name) return i.t;
  }
  std::string all;
  for (const auto& i : kDTypes) {
    if (!all.empty()) all += ", ";
    all += i.name;
  }
  return unsupported("unknown dtype \"" + std::string(name) + "\" (expected one of " + all + ")");
}

bool dtype_is_float(DType t) {
  const DTypeInfo* i = find_info(t);
  return i && i->is_float;
}

// ---- bf16: the top 16 bits of fp32 --------------------------------------------------------------
uint16_t float_to_bf16(float f) {
  const uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN, sign and top payload kept
  }
  // Round to nearest even; an overflow carries into the exponent and gives inf, as it should.
  const uint32_t lsb = (u >> 16) & 1u;
  return static_cast<uint16_t>((u + 0x7fffu + lsb) >> 16);
}

float bf16_to_float(uint16_t h) {
  return f32_from_bits(static_cast<uint32_t>(h) << 16);
}

// ---- fp16: 1 sign, 5 exponent (bias 15), 10 mantissa; subnormals down to 2^-24 -----------------
uint16_t float_to_fp16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) {
    return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // quiet NaN
  }
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 (max + half ulp) and inf -> inf
  const int e = static_cast<int>(a >> 23) - 127;
  const uint64_t mant = (a & 0x7fffffu) | 0x800000u;
  if (e >= -14) {
    // Normal: keep 10 of 23 mantissa bits; a carry out of the mantissa bumps the exponent.
    const uint64_t m = shift_rne(mant & 0x7fffffu, 13);  // 0..1024
    return static_cast<uint16_t>(sign | ((static_cast<uint64_t>(e + 15) << 10) + m));
  }
  // Subnormal: value = mant * 2^(e-23) = k * 2^-24 with k = mant * 2^(e+1).
  if (e < -25) return sign;  // below half the smallest subnormal (fp32 subnormals included)
  const int s = -e - 1;      // 14..24
  return static_cast<uint16_t>(sign | shift_rne(mant, s));
}

float fp16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t m = h & 0x3ffu;
  if (e == 0x1f) return f32_from_bits(sign | 0x7f800000u | (m << 13));  // inf / NaN
  if (e == 0) {
    // Subnormal (or zero): m * 2^-24, exact in fp32.
    const float v = static_cast<float>(m) * f32_from_bits(0x33800000u);  // 2^-24
    return sign ? -v : v;
  }
  return f32_from_bits(sign | ((e + 112) << 23) | (m << 13));
}

// ---- fp8 e4m3 (OCP / NVIDIA "fn"): 1 sign, 4 exponent (bias 7), 3 mantissa, no inf --------------
// Normal: (1 + m/8) * 2^(e-7), e = 1..15; subnormal: m * 2^-9; 0x7f/0xff are NaN; max 448.
uint8_t float_to_e4m3(float f) {
  const uint32_t u = f32_bits(f);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7fu;       // NaN
  if (a >= 0x43e00000u) return sign | 0x7eu;      // >= 448 (inf included): saturate
  const int e = static_cast<int>(a >> 23) - 127;  // a < 448 so e <= 8
  const uint64_t mant = (a & 0x7fffffu) | 0x800000u;
  if (e >= -6) {
    const uint64_t m = shift_rne(mant & 0x7fffffu, 20);  // 0..8; 8 carries into the exponent
    return static_cast<uint8_t>(sign | ((static_cast<uint64_t>(e + 7) << 3) + m));
  }
  // Subnormal: value = k * 2^-9 with k = mant * 2^(e-14).
  if (e < -11) return sign;  // below half the smallest subnormal 2^-9
  const int s = 14 - e;      // 21..25
  return static_cast<uint8_t>(sign | shift_rne(mant, s));
}

float e4m3_to_float(uint8_t v) {
  const bool neg = (v & 0x80u) != 0;
  const uint32_t e = (v >> 3) & 0xfu;
  const uint32_t m = v & 0x7u;
  float r;
  if (e == 0xf && m == 0x7) {
    r = f32_from_bits(0x7fc00000u);
  } else if (e == 0) {
    r = static_cast<float>(m) * f32_from_bits(0x3b000000u);  // m * 2^-9
  } else {
    r = f32_from_bits(((e + 120) << 23) | (m << 20));
  }
  return neg ? -r : r;
}

// ---- bulk --------------------------------------------------------------------------------------
Status convert_to_f32(DType t, const void* src, float* dst, int64_t count) {
  switch (t) {
    case DType::kF32:
      if (count > 0) std::memmove(dst, src, static_cast<size_t>(count) * sizeof(float));
      return Status::Ok();
    case DType::kF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < count; ++i) dst[i] = fp16_to_float(s[i]);
      return Status::Ok();
    }
    case DType::kBF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < count; ++i) dst[i] = bf16_to_float(s[i]);
      return Status::Ok();
    }
    case DType::kF8E4M3: {
      const auto* s = static_cast<const uint8_t*>(src);
      for (int64_t i = 0; i < count; ++i) dst[i] = e4m3_to_float(s[i]);
      return Status::Ok();
    }
    case DType::kI8: {
      const auto* s = static_cast<const int8_t*>(src);
      for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<float>(s[i]);
      return Status::Ok();
    }
    case DType::kI32: {
      const auto* s = static_cast<const int32_t*>(src);
      for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<float>(s[i]);
      return Status::Ok();
    }
    default:
      return unsupported(std::string("convert_to_f32: dtype ") + dtype_name(t) +
                         " not supported (expected F32, F16, BF16, F8_E4M3, I8 or I32)");
  }
}

namespace {
// fp32 -> integer with round-half-even and saturation; NaN -> 0.
template <class T>
T f32_to_int_sat(float v, double lo, double hi) {
  if (v != v) return 0;
  double r = static_cast<double>(v);
  if (r <= lo) return static_cast<T>(lo);
  if (r >= hi) return static_cast<T>(hi);
  // Round half to even without depending on the FPU rounding mode.
  double fl = static_cast<double>(static_cast<int64_t>(r));
  if (fl > r) fl -= 1.0;  // floor for negatives
  const double frac = r - fl;
  double q = fl;
  if (frac > 0.5 || (frac == 0.5 && static_cast<int64_t>(fl) % 2 != 0)) q = fl + 1.0;
  return static_cast<T>(q);
}
}  // namespace

Status convert_from_f32(DType t, const float* src, void* dst, int64_t count) {
  switch (t) {
    case DType::kF32:
      if (count > 0) std::memmove(dst, src, static_cast<size_t>(count) * sizeof(float));
      return Status::Ok();
    case DType::kF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < count; ++i) d[i] = float_to_fp16(src[i]);
      return Status::Ok();
    }
    case DType::kBF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < count; ++i) d[i] = float_to_bf16(src[i]);
      return Status::Ok();
    }
    case DType::kF8E4M3: {
      auto* d = static_cast<uint8_t*>(dst);
      for (int64_t i = 0; i < count; ++i) d[i] = float_to_e4m3(src[i]);
      return Status::Ok();
    }
    case DType::kI8: {
      auto* d = static_cast<int8_t*>(dst);
      for (int64_t i = 0; i < count; ++i) d[i] = f32_to_int_sat<int8_t>(src[i], -128.0, 127.0);
      return Status::Ok();
    }
    case DType::kI32: {
      auto* d = static_cast<int32_t*>(dst);
      for (int64_t i = 0; i < count; ++i) {
        d[i] = f32_to_int_sat<int32_t>(src[i], -2147483648.0, 2147483647.0);
      }
      return Status::Ok();
    }
    default:
      return unsupported(std::string("convert_from_f32: dtype ") + dtype_name(t) +
                         " not supported (expected F32, F16, BF16, F8_E4M3, I8 or I32)");
  }
}

}  // namespace slidesparse
