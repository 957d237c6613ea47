// N:M pattern parsing and validation. The messages say what was expected, e.g. for "7:8":
// "invalid pattern \"7:8\": n must be <= m-2 = 6 to slide onto 2:4 (a sparser 6:8 or 2:4 fits)".
#include "slidesparse/pattern.h"

#include <string>

namespace slidesparse {

namespace {

// Parses a run of 1..3 decimal digits at s[pos]; advances pos. -1 on failure.
int parse_small_uint(std::string_view s, size_t& pos) {
  size_t start = pos;
  int v = 0;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
    if (pos - start >= 9) return -1;  // a large value still gets check()'s message
    v = v * 10 + (s[pos] - '0');
    ++pos;
  }
  if (pos - start > 1 && s[start] == '0') return -1;  // no leading zeros ("0006")
  return pos == start ? -1 : v;
}

Status check(int n, int m, const std::string& what) {
  if (n < 1)
    return invalid_argument(what + ": n must be >= 1 (at least one kept weight per block)");
  if (m % 2 != 0) {
    return invalid_argument(what + ": m must be even (the slide splits a block into pairs)");
  }
  if (m < 4) return invalid_argument(what + ": m must be >= 4 (2:4 is the smallest pattern)");
  if (m > 16) return invalid_argument(what + ": m must be <= 16");
  if (n > m - 2) {
    return invalid_argument(what + ": n must be <= m-2 = " + std::to_string(m - 2) +
                            " to slide onto 2:4 (the family is 2:4, 4:6, 6:8, ..., 14:16)");
  }
  return Status::Ok();
}

}  // namespace

Status Pattern::validate(int n, int m) {
  return check(n, m, "invalid pattern " + std::to_string(n) + ":" + std::to_string(m));
}

Expected<Pattern> Pattern::parse(std::string_view text) {
  const std::string what = "invalid pattern \"" + std::string(text) + "\"";
  size_t pos = 0;
  const int n = parse_small_uint(text, pos);
  if (n < 0 || pos >= text.size() || text[pos] != ':') {
    return invalid_argument(what + ": expected n:m with decimal n and m, e.g. 6:8");
  }
  ++pos;
  const int m = parse_small_uint(text, pos);
  if (m < 0 || pos != text.size()) {
    return invalid_argument(what + ": expected n:m with decimal n and m, e.g. 6:8");
  }
  SS_RETURN_IF_ERROR(check(n, m, what));
  Pattern p;
  p.n = n;
  p.m = m;
  return p;
}

std::string Pattern::str() const {
  return std::to_string(n) + ":" + std::to_string(m);
}

}  // namespace slidesparse
