// The compact n:m tensor: pack a pruned dense weight into (values, masks), unpack it, verify it,
// and the whole prune -> quantize -> pack conversion of one linear weight.
#include "slidesparse/nm_tensor.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>

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

// Gathers the selected elements of each block (ascending position); a nonzero that the mask does
// not select is an error (the dense weight was not pruned with these masks).
template <class U>
Status pack_impl(const U* src, int64_t N, int64_t K, Pattern p, const uint16_t* masks, U vmask,
                 U* values) {
  const int64_t blocks = p.blocks(K);
  const int64_t per_row = blocks * p.n;
  for (int64_t r = 0; r < N; ++r) {
    const U* row = src + r * K;
    U* vrow = values + r * per_row;
    for (int64_t b = 0; b < blocks; ++b) {
      const uint32_t mk = masks[r * blocks + b];
      const int64_t k0 = b * p.m;
      U* v = vrow + b * p.n;
      for (int i = 0; i < p.m; ++i) {
        const int64_t k = k0 + i;
        if (mk & (1u << i)) {
          *v++ = k < K ? row[k] : U{0};
        } else if (k < K && (row[k] & vmask)) {
          return invalid_argument("n:m pack: row " + std::to_string(r) + ", column " +
                                  std::to_string(k) +
                                  " is nonzero but not selected by the mask (expected a weight "
                                  "pruned with these masks)");
        }
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
  out.values.assign(static_cast<size_t>(N * out.values_per_row()) * dtype_size(t), 0);
  out.masks.assign(masks, masks + N * blocks);
  Status s;
  switch (dtype_size(t)) {
    case 1:
      s = pack_impl(static_cast<const uint8_t*>(dense), N, K, p, masks,
                    static_cast<uint8_t>(t == DType::kI8 ? 0xffu : 0x7fu),
                    reinterpret_cast<uint8_t*>(out.values.data()));
      break;
    default:
      s = pack_impl(static_cast<const uint16_t*>(dense), N, K, p, masks, uint16_t{0x7fff},
                    reinterpret_cast<uint16_t*>(out.values.data()));
      break;
  }
  SS_RETURN_IF_ERROR(s);
  return out;
}

void nm_unpack(const NmTensor& t, void* dense) {
  nm_unpack_rows(t, 0, t.N, dense);
}

void nm_unpack_rows(const NmTensor& t, int64_t r0, int64_t r1, void* dense) {
  const size_t es = dtype_size(t.value_dtype);
  const int64_t blocks = t.blocks();
  const int m = t.pattern.m;
  auto* dst = static_cast<uint8_t*>(dense);
  std::memset(dst + static_cast<size_t>(r0 * t.K) * es, 0,
              static_cast<size_t>((r1 - r0) * t.K) * es);
  for (int64_t r = r0; r < r1; ++r) {
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
                               const float* act_norms, QuantMode q, DType float_dtype,
                               int threads) {
  if (q == QuantMode::kNone && float_dtype != DType::kBF16 && float_dtype != DType::kF16) {
    return unsupported(std::string("n:m compress: value dtype ") + dtype_name(float_dtype) +
                       " not supported for quant none (expected BF16 or F16)");
  }
  // Validates pattern, shape and norms once, on a single row, before any allocation.
  SS_RETURN_IF_ERROR(prune_select(w, N > 0 ? 1 : 0, K, p, method, act_norms).status());

  NmTensor out;
  out.pattern = p;
  out.N = N;
  out.K = K;
  out.value_dtype = q == QuantMode::kNone ? float_dtype : quant_storage_dtype(q);
  const int64_t blocks = out.blocks();
  const int64_t per_row = out.values_per_row();
  out.masks.assign(static_cast<size_t>(N * blocks), 0);
  out.values.assign(static_cast<size_t>(N * per_row) * dtype_size(out.value_dtype), 0);
  if (q != QuantMode::kNone) out.scales.assign(static_cast<size_t>(N), 1.0f);

  // Rows are independent: chunks of rows go to worker threads (deterministic result; memory
  // bounded by threads x chunk x K).
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(K, 1));
  const int64_t nchunks = (N + chunk - 1) / chunk;
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  auto work = [&]() {
    std::vector<float> pruned;
    std::vector<uint8_t> enc;
    for (int64_t c = next++; c < nchunks && !failed; c = next++) {
      const int64_t r0 = c * chunk, rows = std::min(chunk, N - r0);
      auto masks = prune_select(w + r0 * K, rows, K, p, method, act_norms);
      if (!masks.ok()) {
        failed = true;
        return;
      }
      std::copy(masks->begin(), masks->end(), out.masks.begin() + r0 * blocks);
      pruned.assign(w + r0 * K, w + (r0 + rows) * K);
      prune_apply(pruned.data(), rows, K, p, masks->data());
      enc.resize(static_cast<size_t>(rows * K) * dtype_size(out.value_dtype));
      Status st;
      if (q == QuantMode::kNone) {
        st = convert_from_f32(float_dtype, pruned.data(), enc.data(), rows * K);
        if (st.ok()) {
          st = pack_impl(reinterpret_cast<const uint16_t*>(enc.data()), rows, K, p, masks->data(),
                         uint16_t{0x7fff},
                         reinterpret_cast<uint16_t*>(out.values.data()) + r0 * per_row);
        }
      } else {
        quantize_rows(q, pruned.data(), rows, K, enc.data(), out.scales.data() + r0);
        st = pack_impl(enc.data(), rows, K, p, masks->data(),
                       static_cast<uint8_t>(q == QuantMode::kInt8 ? 0xffu : 0x7fu),
                       out.values.data() + r0 * per_row);
      }
      if (!st.ok()) failed = true;
    }
  };
  const int64_t hw =
      threads > 0
          ? threads
          : std::min<int64_t>(16, std::max<int64_t>(1, std::thread::hardware_concurrency()));
  const int64_t nthreads = std::min<int64_t>(hw, nchunks);
  std::vector<std::thread> pool;
  for (int64_t i = 1; i < nthreads; ++i) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (failed) {
    // Re-run serially for the error with the right row numbers (e.g. a non-finite weight).
    SS_RETURN_IF_ERROR(prune_select(w, N, K, p, method, act_norms).status());
    return internal_error("n:m compress failed without a prune error");
  }
  return out;
}

Expected<NmTensor> nm_concat_rows(const std::vector<const NmTensor*>& parts) {
  if (parts.empty() || !parts[0]) return invalid_argument("nm_concat_rows: no tensors");
  const NmTensor& f = *parts[0];
  NmTensor out;
  out.pattern = f.pattern;
  out.K = f.K;
  out.value_dtype = f.value_dtype;
  const bool quantized = f.quant() != QuantMode::kNone;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!parts[i])
      return invalid_argument("nm_concat_rows: part " + std::to_string(i) + " is null");
    const NmTensor& t = *parts[i];
    const std::string who = "nm_concat_rows: part " + std::to_string(i) + " ";
    if (t.pattern != f.pattern)
      return invalid_argument(who + "has pattern " + t.pattern.str() + ", expected " +
                              f.pattern.str());
    if (t.K != f.K)
      return invalid_argument(who + "has K=" + std::to_string(t.K) + ", expected " +
                              std::to_string(f.K));
    if (t.value_dtype != f.value_dtype)
      return invalid_argument(who + "has values " + dtype_name(t.value_dtype) + ", expected " +
                              dtype_name(f.value_dtype));
    const size_t nv = static_cast<size_t>(t.N * t.values_per_row()) * dtype_size(t.value_dtype);
    const size_t nm = static_cast<size_t>(t.N * t.blocks());
    if (t.N < 0 || t.values.size() != nv || t.masks.size() != nm ||
        (quantized && t.scales.size() != static_cast<size_t>(t.N)))
      return invalid_argument(who + "has inconsistent sizes for N=" + std::to_string(t.N));
    out.N += t.N;
    out.values.insert(out.values.end(), t.values.begin(), t.values.end());
    out.masks.insert(out.masks.end(), t.masks.begin(), t.masks.end());
    if (quantized) out.scales.insert(out.scales.end(), t.scales.begin(), t.scales.end());
  }
  return out;
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
