// N:M patterns ("6:8": at most n kept in every aligned block of m along K) and their slide
// geometry.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "slidesparse/status.h"

namespace slidesparse {

// Valid: m even, 4 <= m <= 16, 1 <= n <= m - 2 (so 2:4, 4:6, 6:8, 8:10, ..., 14:16, and sparser
// patterns of the same m such as 5:8, which use the slide of 6:8). Invalid examples with their
// messages: "7:8" (n > m-2 cannot slide onto 2:4), "2:3" (m odd), "0:4" (n = 0), "2:18" (m > 16).
struct Pattern {
  int n = 2;
  int m = 4;

  static Expected<Pattern> parse(std::string_view text);
  static Status validate(int n, int m);
  std::string str() const;  // "6:8"

  // Pairs per block N = m/2; 2:4 windows per block = N - 1; lifted length per block 4(N-1).
  int pairs() const { return m / 2; }
  int windows() const { return m / 2 - 1; }
  int lifted_block() const { return 4 * windows(); }
  // gamma = 2(N-1)/N: 2:4 -> 1, 4:6 -> 4/3, 6:8 -> 3/2, 8:10 -> 8/5.
  double gamma() const { return 2.0 * windows() / pairs(); }

  int64_t blocks(int64_t K) const { return (K + m - 1) / m; }
  int64_t k_pad(int64_t K) const { return blocks(K) * m; }
  // K' before alignment: (K_pad/m) * 4(N-1).
  int64_t k_lifted(int64_t K) const { return blocks(K) * lifted_block(); }
  // K' rounded up to a multiple of `align` (cuSPARSELt: 32 for 8-bit, 16 for 16-bit types).
  int64_t k_lifted_aligned(int64_t K, int64_t align) const {
    return (k_lifted(K) + align - 1) / align * align;
  }
  bool operator==(const Pattern& o) const { return n == o.n && m == o.m; }
  bool operator!=(const Pattern& o) const { return !(*this == o); }
};

}  // namespace slidesparse
