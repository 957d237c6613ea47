// Symmetric per-row quantization (weights: per output channel; activations: per token).
// scale = absmax(row)/qmax (1.0 if the row is all zero); int8: q = round_half_even(v/scale)
// clamped to [-127, 127]; fp8 e4m3: q = e4m3(v/scale) (RNE, saturating). Arithmetic in fp32.
#pragma once

#include <cstdint>
#include <string_view>

#include "slidesparse/dtype.h"
#include "slidesparse/status.h"

namespace slidesparse {

enum class QuantMode { kNone, kInt8, kFp8 };
Expected<QuantMode> quant_mode_parse(std::string_view s);  // "none" | "int8" | "fp8"
const char* quant_mode_name(QuantMode q);
DType quant_storage_dtype(QuantMode q);  // I8, F8_E4M3 (kNone: not applicable -> F32)
float quant_qmax(QuantMode q);           // 127, 448

// x: [rows, cols] fp32 -> q: [rows, cols] int8 or e4m3 codes (int8_t / uint8_t), scales: [rows].
void quantize_rows(QuantMode q, const float* x, int64_t rows, int64_t cols, void* out,
                   float* scales);
// Per-row scale only (same rule): used by kernels' references.
float quant_row_scale(QuantMode q, const float* row, int64_t cols);
// One element given its row scale: exactly what quantize_rows does.
int8_t quantize_int8(float v, float scale);
uint8_t quantize_fp8(float v, float scale);

}  // namespace slidesparse
