// N:M pruning. Per row and aligned block of m (positions >= K are padding with score 0), keep the
// n positions with the largest scores, ties to the lower position. Equivalently: drop the m-n
// positions that come last in the order (score descending, position ascending).
#include "slidesparse/prune.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace slidesparse {

Expected<PruneMethod> prune_method_parse(std::string_view s) {
  if (s == "magnitude") return PruneMethod::kMagnitude;
  if (s == "wanda") return PruneMethod::kWanda;
  return invalid_argument("invalid prune method \"" + std::string(s) +
                          "\": expected magnitude or wanda");
}

const char* prune_method_name(PruneMethod m) {
  return m == PruneMethod::kWanda ? "wanda" : "magnitude";
}

Expected<std::vector<uint16_t>> prune_select(const float* w, int64_t N, int64_t K, Pattern p,
                                             PruneMethod method, const float* act_norms) {
  int64_t count = 0;
  if (act_norms != nullptr) count = K;
  return prune_select(w, N, K, p, method, act_norms, count);
}

Expected<std::vector<uint16_t>> prune_select(const float* w, int64_t N, int64_t K, Pattern p,
                                             PruneMethod method, const float* act_norms,
                                             int64_t act_norms_count) {
  SS_RETURN_IF_ERROR(Pattern::validate(p.n, p.m));
  if (N < 0 || K < 0) {
    return invalid_argument("prune: expected non-negative shape, got [" + std::to_string(N) + "," +
                            std::to_string(K) + "]");
  }
  if (N > 0 && K > 0 && w == nullptr) return invalid_argument("prune: weight pointer is null");
  const bool wanda = method == PruneMethod::kWanda;
  if (wanda) {
    if (act_norms == nullptr || act_norms_count != K) {
      return invalid_argument("prune wanda: expected " + std::to_string(K) +
                              " activation norms (one per input channel), got " +
                              std::to_string(act_norms == nullptr ? 0 : act_norms_count));
    }
    for (int64_t k = 0; k < K; ++k) {
      if (!std::isfinite(act_norms[k]) || act_norms[k] < 0.0f) {
        return invalid_argument("prune wanda: activation norm of input channel " +
                                std::to_string(k) + " is " + std::to_string(act_norms[k]) +
                                " (expected finite and >= 0)");
      }
    }
  } else if (act_norms != nullptr && act_norms_count != 0) {
    return invalid_argument("prune magnitude: activation norms given (they are for wanda only)");
  }

  const int m = p.m;
  const int drop = p.m - p.n;
  const int64_t blocks = p.blocks(K);
  std::vector<uint16_t> masks(static_cast<size_t>(N * blocks));
  float score[16];
  for (int64_t r = 0; r < N; ++r) {
    const float* row = w + r * K;
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t k0 = b * m;
      for (int i = 0; i < m; ++i) {
        const int64_t k = k0 + i;
        if (k >= K) {
          score[i] = 0.0f;
          continue;
        }
        const float v = row[k];
        if (!std::isfinite(v)) {
          return invalid_argument("prune: weight at row " + std::to_string(r) + ", column " +
                                  std::to_string(k) + " is not finite (expected finite values)");
        }
        score[i] = wanda ? std::fabs(v) * act_norms[k] : std::fabs(v);  // fabs(-0.0) == 0
      }
      uint32_t keep = (1u << m) - 1;
      for (int d = 0; d < drop; ++d) {
        // The last kept position in the order (score desc, position asc): the smallest score,
        // the highest position among equal scores.
        int worst = -1;
        for (int i = 0; i < m; ++i) {
          if (!(keep & (1u << i))) continue;
          if (worst < 0 || score[i] <= score[worst]) worst = i;
        }
        keep &= ~(1u << worst);
      }
      masks[static_cast<size_t>(r * blocks + b)] = static_cast<uint16_t>(keep);
    }
  }
  return masks;
}

void prune_apply(float* w, int64_t N, int64_t K, Pattern p, const uint16_t* masks) {
  const int64_t blocks = p.blocks(K);
  for (int64_t r = 0; r < N; ++r) {
    float* row = w + r * K;
    for (int64_t b = 0; b < blocks; ++b) {
      const uint32_t mask = masks[r * blocks + b];
      const int64_t k0 = b * p.m;
      const int len = static_cast<int>(std::min<int64_t>(p.m, K - k0));
      for (int i = 0; i < len; ++i) {
        if (!(mask & (1u << i))) row[k0 + i] = 0.0f;
      }
    }
  }
}

namespace {
// Nonzero test on the raw element: floats ignore the sign bit (-0.0 is zero).
template <class U>
bool is_nonzero(const void* base, int64_t i, U value_mask) {
  U v;
  std::memcpy(&v, static_cast<const uint8_t*>(base) + i * static_cast<int64_t>(sizeof(U)),
              sizeof(U));
  return (v & value_mask) != 0;
}
}  // namespace

Expected<bool> pattern_holds(DType t, const void* w, int64_t N, int64_t K, Pattern p) {
  SS_RETURN_IF_ERROR(Pattern::validate(p.n, p.m));
  uint64_t vmask;
  switch (t) {
    case DType::kF32:
      vmask = 0x7fffffffu;
      break;
    case DType::kF16:
    case DType::kBF16:
      vmask = 0x7fffu;
      break;
    case DType::kF8E4M3:
      vmask = 0x7fu;
      break;
    case DType::kI8:
    case DType::kU8:
      vmask = 0xffu;
      break;
    case DType::kI16:
    case DType::kU16:
      vmask = 0xffffu;
      break;
    case DType::kI32:
    case DType::kU32:
      vmask = 0xffffffffu;
      break;
    default:
      return unsupported(std::string("pattern check: dtype ") + dtype_name(t) + " not supported");
  }
  const size_t es = dtype_size(t);
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t k0 = 0; k0 < K; k0 += p.m) {
      int nz = 0;
      for (int64_t k = k0; k < K && k < k0 + p.m; ++k) {
        const int64_t i = r * K + k;
        bool z;
        if (es == 1) {
          z = is_nonzero<uint8_t>(w, i, static_cast<uint8_t>(vmask));
        } else if (es == 2) {
          z = is_nonzero<uint16_t>(w, i, static_cast<uint16_t>(vmask));
        } else {
          z = is_nonzero<uint32_t>(w, i, static_cast<uint32_t>(vmask));
        }
        nz += z ? 1 : 0;
      }
      if (nz > p.n) return false;
    }
  }
  return true;
}

}  // namespace slidesparse
