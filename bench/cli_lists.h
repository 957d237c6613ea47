// Comma-separated list flags shared by `bench kernel` and `tune`.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "slidesparse/status.h"

namespace slidesparse::cli {

inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

inline Status parse_ints(const std::string& flag, const std::string& s, std::vector<int64_t>* out) {
  out->clear();
  if (!s.empty() && (s.front() == ',' || s.back() == ',' || s.find(",,") != std::string::npos))
    return invalid_argument(flag + " '" + s + "': empty item in the comma-separated list");
  for (const auto& t : split_list(s)) {
    try {
      size_t pos = 0;
      long long v = std::stoll(t, &pos);
      if (pos != t.size()) throw std::invalid_argument(t);
      out->push_back(v);
    } catch (const std::exception&) {
      return invalid_argument(flag + " '" + s + "': expected a comma-separated list of integers");
    }
  }
  return Status::Ok();
}

}  // namespace slidesparse::cli
