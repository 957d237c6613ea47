// The slide of pruned n:m weights into overlapping 2:4 windows and the matching activation lift.
// Both are pure data movement on raw elements, so they are exact for every dtype.
#include "slidesparse/slide.h"

#include <cstring>
#include <string>

namespace slidesparse {

namespace {

// Bits that must be nonzero for an element to count as nonzero (-0.0 is zero for floats).
Expected<uint32_t> value_mask(DType t) {
  switch (t) {
    case DType::kF32:
      return uint32_t{0x7fffffffu};
    case DType::kF16:
    case DType::kBF16:
      return uint32_t{0x7fffu};
    case DType::kF8E4M3:
      return uint32_t{0x7fu};
    case DType::kI8:
      return uint32_t{0xffu};
    default:
      return unsupported(std::string("slide: weight dtype ") + dtype_name(t) +
                         " not supported (expected F32, F16, BF16, F8_E4M3 or I8)");
  }
}

template <class U>
Status slide_impl(const U* w, int64_t N, int64_t K, Pattern p, U* out, int64_t K_out, U vmask) {
  const int m = p.m;
  const int windows = p.windows();
  const int lb = p.lifted_block();
  const int64_t blocks = p.blocks(K);
  for (int64_t r = 0; r < N; ++r) {
    const U* row = w + r * K;
    U* orow = out + r * K_out;
    std::memset(orow, 0, static_cast<size_t>(K_out) * sizeof(U));
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t k0 = b * m;
      uint32_t pending = 0;  // nonzero positions of this block not yet placed
      for (int i = 0; i < m && k0 + i < K; ++i) {
        if (row[k0 + i] & vmask) pending |= 1u << i;
      }
      U* ob = orow + b * lb;
      for (int j = 0; j < windows && pending; ++j) {
        int placed = 0;
        for (int t = 0; t < 4 && placed < 2; ++t) {
          const int pos = 2 * j + t;
          if (pending & (1u << pos)) {
            ob[4 * j + t] = row[k0 + pos];
            pending &= ~(1u << pos);
            ++placed;
          }
        }
      }
      if (pending) {
        int first = 0;
        while (!(pending & (1u << first))) ++first;
        return invalid_argument(
            "slide " + p.str() + ": row " + std::to_string(r) + ", block " + std::to_string(b) +
            " (columns " + std::to_string(k0) + ".." + std::to_string(k0 + m - 1) +
            "): nonzero at column " + std::to_string(k0 + first) +
            " cannot be placed (a block may hold at most " + std::to_string(2 * windows) +
            " nonzeros that fit the windows; expected a weight pruned to " + p.str() + ")");
      }
    }
  }
  return Status::Ok();
}

template <class U>
void lift_impl(const U* x, int64_t M, int64_t K, Pattern p, U* out, int64_t K_out) {
  const int m = p.m;
  const int windows = p.windows();
  const int lb = p.lifted_block();
  const int64_t blocks = p.blocks(K);
  const int64_t full_blocks = K / m;  // blocks with no source index >= K
  for (int64_t r = 0; r < M; ++r) {
    const U* row = x + r * K;
    U* orow = out + r * K_out;
    for (int64_t b = 0; b < full_blocks; ++b) {
      const U* src = row + b * m;
      U* dst = orow + b * lb;
      for (int j = 0; j < windows; ++j) std::memcpy(dst + 4 * j, src + 2 * j, 4 * sizeof(U));
    }
    for (int64_t b = full_blocks; b < blocks; ++b) {
      for (int j = 0; j < windows; ++j) {
        for (int t = 0; t < 4; ++t) {
          const int64_t s = b * m + 2 * j + t;
          orow[b * lb + 4 * j + t] = s < K ? row[s] : U{0};
        }
      }
    }
    const int64_t kl = blocks * lb;
    if (K_out > kl) std::memset(orow + kl, 0, static_cast<size_t>(K_out - kl) * sizeof(U));
  }
}

Status check_shapes(const char* what, int64_t rows, int64_t K, Pattern p, int64_t K_out) {
  SS_RETURN_IF_ERROR(Pattern::validate(p.n, p.m));
  if (rows < 0 || K < 0) {
    return invalid_argument(std::string(what) + ": expected non-negative shape, got [" +
                            std::to_string(rows) + "," + std::to_string(K) + "]");
  }
  if (K_out < p.k_lifted(K)) {
    return invalid_argument(std::string(what) + " " + p.str() + ": output has " +
                            std::to_string(K_out) + " columns, expected >= K' = " +
                            std::to_string(p.k_lifted(K)) + " for K = " + std::to_string(K));
  }
  return Status::Ok();
}

}  // namespace

Status slide_weights(DType t, const void* w, int64_t N, int64_t K, Pattern p, void* out,
                     int64_t K_out) {
  SS_ASSIGN_OR_RETURN(uint32_t vmask, value_mask(t));
  SS_RETURN_IF_ERROR(check_shapes("slide", N, K, p, K_out));
  switch (dtype_size(t)) {
    case 1:
      return slide_impl(static_cast<const uint8_t*>(w), N, K, p, static_cast<uint8_t*>(out), K_out,
                        static_cast<uint8_t>(vmask));
    case 2:
      return slide_impl(static_cast<const uint16_t*>(w), N, K, p, static_cast<uint16_t*>(out),
                        K_out, static_cast<uint16_t>(vmask));
    default:
      return slide_impl(static_cast<const uint32_t*>(w), N, K, p, static_cast<uint32_t*>(out),
                        K_out, vmask);
  }
}

Status lift_activations(DType t, const void* x, int64_t M, int64_t K, Pattern p, void* out,
                        int64_t K_out) {
  SS_RETURN_IF_ERROR(check_shapes("lift", M, K, p, K_out));
  switch (dtype_size(t)) {
    case 1:
      lift_impl(static_cast<const uint8_t*>(x), M, K, p, static_cast<uint8_t*>(out), K_out);
      return Status::Ok();
    case 2:
      lift_impl(static_cast<const uint16_t*>(x), M, K, p, static_cast<uint16_t*>(out), K_out);
      return Status::Ok();
    case 4:
      lift_impl(static_cast<const uint32_t*>(x), M, K, p, static_cast<uint32_t*>(out), K_out);
      return Status::Ok();
    default:
      return unsupported(std::string("lift: activation dtype ") + dtype_name(t) +
                         " not supported (expected an element of 1, 2 or 4 bytes)");
  }
}

int64_t lift_source_index(int64_t kp, int64_t K, Pattern p) {
  if (kp < 0 || kp >= p.k_lifted(K)) return -1;
  const int lb = p.lifted_block();
  const int64_t b = kp / lb;
  const int r = static_cast<int>(kp % lb);
  const int64_t src = b * p.m + 2 * (r / 4) + r % 4;
  return src < K ? src : -1;
}

}  // namespace slidesparse
