// The compact n:m tensor: pack a pruned dense weight into (values, masks), unpack it, verify it,
// and the whole prune -> quantize -> pack conversion of one linear weight.
#include "slidesparse/nm_tensor.h"

#include <cmath>
#include <cstring>
#include <string>

namespace slidesparse {

namespace {

int popcount16(uint32_t v) {
  int c = 0;
  for (; v; v &= v - 1) ++c;
  return c;
}

bool is_value_dtype(DType t) {
  return t == DType::kBF16 || t == DType::kF16 || t == DType::kI8 || t == DType::kF8E4M3;
}

// -0.0 is zero for floats.
bool element_nonzero(DType t, const uint8_t* p) {
  switch (dtype_size(t)) {
    case 1:
      return (p[0] & (t == DType::kI8 ? 0xffu : 0x7fu)) != 0;
    case 2: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return (v & 0x7fffu) != 0;
    }
    default: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return (v & 0x7fffffffu) != 0;
    }
  }
}

Status check_masks(Pattern p, int64_t N, int64_t blocks, const uint16_t* masks) {
  const uint32_t in_range = (1u << p.m) - 1;
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t b = 0; b < blocks; ++b) {
      const uint32_t mk = masks[r * blocks + b];
      if (mk & ~in_range) {
        return format_error("n:m mask row " + std::to_string(r) + ", block " + std::to_string(b) +
                            ": bits set beyond position " + std::to_string(p.m - 1) +
                            " (mask value " + std::to_string(mk) + ", pattern " + p.str() + ")");
      }
      if (popcount16(mk) != p.n) {
        return format_error("n:m mask row " + std::to_string(r) + ", block " + std::to_string(b) +
                            ": " + std::to_string(popcount16(mk)) +
                            " positions selected, expected " + std::to_string(p.n) +
                            " for pattern " + p.str());
      }
    }
  }
  return Status::Ok();
}

}  // namespace

QuantMode NmTensor::quant() const {
  if (value_dtype == DType::kI8) return QuantMode::kInt8;
  if (value_dtype == DType::kF8E4M3) return QuantMode::kFp8;
  return QuantMode::kNone;
}

Expected<NmTensor> nm_pack(DType t, const void* dense, int64_t N, int64_t K, Pattern p,
                           const uint16_t* masks) {
  SS_RETURN_IF_ERROR(Pattern::validate(p.n, p.m));
  if (!is_value_dtype(t)) {
    return unsupported(std::string("n:m pack: value dtype ") + dtype_name(t) +
                       " not supported (expected BF16, F16, I8 or F8_E4M3)");
  }
  if (N < 0 || K < 0) {
    return invalid_argument("n:m pack: expected non-negative shape, got [" + std::to_string(N) +
                            "," + std::to_string(K) + "]");
  }
  NmTensor out;
  out.pattern = p;
  out.N = N;
  out.K = K;
  out.value_dtype = t;
  const int64_t blocks = out.blocks();
  SS_RETURN_IF_ERROR(check_masks(p, N, blocks, masks));
  const size_t es = dtype_size(t);
  out.values.assign(static_cast<size_t>(N * out.values_per_row()) * es, 0);
  out.masks.assign(masks, masks + N * blocks);
  const auto* src = static_cast<const uint8_t*>(dense);
  for (int64_t r = 0; r < N; ++r) {
    uint8_t* vrow = out.values.data() + static_cast<size_t>(r * out.values_per_row()) * es;
    int64_t v = 0;
    for (int64_t b = 0; b < blocks; ++b) {
      const uint32_t mk = masks[r * blocks + b];
      for (int i = 0; i < p.m; ++i) {
        const int64_t k = b * p.m + i;
        const uint8_t* e = src + static_cast<size_t>(r * K + k) * es;
        if (mk & (1u << i)) {
          if (k < K) std::memcpy(vrow + static_cast<size_t>(v) * es, e, es);
          ++v;
        } else if (k < K && element_nonzero(t, e)) {
          return invalid_argument("n:m pack: row " + std::to_string(r) + ", column " +
                                  std::to_string(k) +
                                  " is nonzero but not selected by the mask (expected a weight "
                                  "pruned with these masks)");
        }
      }
    }
  }
  return out;
}

void nm_unpack(const NmTensor& t, void* dense) {
  const size_t es = dtype_size(t.value_dtype);
  const int64_t blocks = t.blocks();
  const int m = t.pattern.m;
  auto* dst = static_cast<uint8_t*>(dense);
  std::memset(dst, 0, static_cast<size_t>(t.N * t.K) * es);
  for (int64_t r = 0; r < t.N; ++r) {
    const uint8_t* vrow = t.values.data() + static_cast<size_t>(r * t.values_per_row()) * es;
    int64_t v = 0;
    for (int64_t b = 0; b < blocks; ++b) {
      const uint32_t mk = t.masks[r * blocks + b];
      for (int i = 0; i < m; ++i) {
        if (!(mk & (1u << i))) continue;
        const int64_t k = b * m + i;
        if (k < t.K) {
          std::memcpy(dst + static_cast<size_t>(r * t.K + k) * es,
                      vrow + static_cast<size_t>(v) * es, es);
        }
        ++v;
      }
    }
  }
}

Status nm_verify(const NmTensor& t) {
  SS_RETURN_IF_ERROR(Pattern::validate(t.pattern.n, t.pattern.m));
  if (!is_value_dtype(t.value_dtype)) {
    return format_error(std::string("n:m tensor: value dtype ") + dtype_name(t.value_dtype) +
                        " not allowed (expected BF16, F16, I8 or F8_E4M3)");
  }
  if (t.N < 0 || t.K < 0) {
    return format_error("n:m tensor: negative shape [" + std::to_string(t.N) + "," +
                        std::to_string(t.K) + "]");
  }
  const int64_t blocks = t.blocks();
  const size_t es = dtype_size(t.value_dtype);
  const size_t want_values = static_cast<size_t>(t.N * t.values_per_row()) * es;
  if (t.values.size() != want_values) {
    return format_error("n:m tensor: values hold " + std::to_string(t.values.size()) +
                        " bytes, expected " + std::to_string(want_values) + " for [" +
                        std::to_string(t.N) + "," + std::to_string(t.values_per_row()) + "] " +
                        dtype_name(t.value_dtype));
  }
  if (t.masks.size() != static_cast<size_t>(t.N * blocks)) {
    return format_error("n:m tensor: " + std::to_string(t.masks.size()) + " masks, expected " +
                        std::to_string(t.N * blocks) + " for [" + std::to_string(t.N) + "," +
                        std::to_string(blocks) + "]");
  }
  const bool quantized = t.quant() != QuantMode::kNone;
  if (quantized && t.scales.size() != static_cast<size_t>(t.N)) {
    return format_error("n:m tensor: " + std::to_string(t.scales.size()) +
                        " weight scales, expected " + std::to_string(t.N) +
                        " (one per output channel)");
  }
  if (!quantized && !t.scales.empty()) {
    return format_error("n:m tensor: weight scales present for unquantized " +
                        std::string(dtype_name(t.value_dtype)) + " values");
  }
  for (size_t r = 0; r < t.scales.size(); ++r) {
    const float s = t.scales[r];
    if (!(s > 0.0f) || !std::isfinite(s)) {
      return format_error("n:m tensor: weight scale of row " + std::to_string(r) + " is " +
                          std::to_string(s) + " (expected finite and > 0)");
    }
  }
  SS_RETURN_IF_ERROR(check_masks(t.pattern, t.N, blocks, t.masks.data()));
  // A selected padding position (>= K) must hold zero.
  if (t.K % t.pattern.m != 0) {
    const int64_t b = blocks - 1;
    for (int64_t r = 0; r < t.N; ++r) {
      const uint32_t mk = t.masks[r * blocks + b];
      int64_t v = r * t.values_per_row() + b * t.pattern.n;
      for (int i = 0; i < t.pattern.m; ++i) {
        if (!(mk & (1u << i))) continue;
        if (b * t.pattern.m + i >= t.K &&
            element_nonzero(t.value_dtype, t.values.data() + static_cast<size_t>(v) * es)) {
          return format_error("n:m tensor: row " + std::to_string(r) +
                              " stores a nonzero value in padding position " +
                              std::to_string(b * t.pattern.m + i) + " (K = " + std::to_string(t.K) +
                              ", expected 0)");
        }
        ++v;
      }
    }
  }
  return Status::Ok();
}

Expected<NmTensor> nm_compress(const float* w, int64_t N, int64_t K, Pattern p, PruneMethod method,
                               const float* act_norms, QuantMode q, DType float_dtype) {
  if (q == QuantMode::kNone && float_dtype != DType::kBF16 && float_dtype != DType::kF16) {
    return unsupported(std::string("n:m compress: value dtype ") + dtype_name(float_dtype) +
                       " not supported for quant none (expected BF16 or F16)");
  }
  SS_ASSIGN_OR_RETURN(std::vector<uint16_t> masks, prune_select(w, N, K, p, method, act_norms));
  std::vector<float> pruned(w, w + N * K);
  prune_apply(pruned.data(), N, K, p, masks.data());
  if (q == QuantMode::kNone) {
    std::vector<uint16_t> h(static_cast<size_t>(N * K));
    SS_RETURN_IF_ERROR(convert_from_f32(float_dtype, pruned.data(), h.data(), N * K));
    return nm_pack(float_dtype, h.data(), N, K, p, masks.data());
  }
  std::vector<uint8_t> codes(static_cast<size_t>(N * K));
  std::vector<float> scales(static_cast<size_t>(N));
  quantize_rows(q, pruned.data(), N, K, codes.data(), scales.data());
  SS_ASSIGN_OR_RETURN(NmTensor t,
                      nm_pack(quant_storage_dtype(q), codes.data(), N, K, p, masks.data()));
  t.scales = std::move(scales);
  return t;
}

std::vector<float> nm_to_dense_f32(const NmTensor& t) {
  const size_t es = dtype_size(t.value_dtype);
  std::vector<uint8_t> dense(static_cast<size_t>(t.N * t.K) * es);
  nm_unpack(t, dense.data());
  std::vector<float> out(static_cast<size_t>(t.N * t.K));
  (void)convert_to_f32(t.value_dtype, dense.data(), out.data(), t.N * t.K);
  if (!t.scales.empty()) {
    for (int64_t r = 0; r < t.N; ++r) {
      for (int64_t k = 0; k < t.K; ++k) out[r * t.K + k] *= t.scales[r];
    }
  }
  return out;
}

}  // namespace slidesparse
