// Text inputs, perplexity, calibration, sampling.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>

#include "slidesparse/engine.h"

namespace slidesparse {
namespace {

bool valid_utf8(const std::string& s, size_t* bad) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (c == 0 || n == 0 || i + n > s.size()) {
      *bad = i;
      return false;
    }
    for (int k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) {
        *bad = i;
        return false;
      }
    i += static_cast<size_t>(n);
  }
  return true;
}

Expected<std::vector<std::string>> fortune_entries() {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const char* name : {"literature", "science", "wisdom"}) {
    const std::string path = std::string(kFortunesDir) + "/" + name;
    std::ifstream in(path);
    if (!in) {
      return not_found("default text: cannot open '" + path +
                       "' (install the Debian 'fortunes' package, or pass --text FILE)");
    }
    std::string line, cur;
    auto flush = [&]() {
      if (!cur.empty() && seen.insert(cur).second) out.push_back(cur);
      cur.clear();
    };
    while (std::getline(in, line)) {
      if (line == "%") {
        flush();
      } else {
        cur += line + "\n";
      }
    }
    flush();
  }
  return out;
}

Expected<std::string> fortune_part(bool calib) {
  SS_ASSIGN_OR_RETURN(std::vector<std::string> e, fortune_entries());
  std::string text;
  for (size_t i = 0; i < e.size(); ++i)
    if ((i % 5 == 4) == calib) text += e[i] + "\n";
  return text;
}

}  // namespace

Expected<std::string> load_text_file(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return not_found("text '" + path + "': no such file");
  if (S_ISDIR(st.st_mode))
    return invalid_argument("text '" + path + "': is a directory, expected a text file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error("text '" + path + "': cannot open file");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.find_first_not_of(" \t\r\n") == std::string::npos) {
    return invalid_argument("text '" + path + "': is empty, expected UTF-8 text");
  }
  size_t bad = 0;
  if (!valid_utf8(s, &bad)) {
    return invalid_argument("text '" + path + "': byte offset " + std::to_string(bad) +
                            " is not UTF-8 text (binary file?)");
  }
  return s;
}

Expected<std::string> default_eval_text() {
  return fortune_part(false);
}
Expected<std::string> default_calib_text() {
  return fortune_part(true);
}

Expected<PplResult> eval_perplexity(Model& m, const std::vector<int32_t>& tokens, int64_t ctx,
                                    int64_t stride) {
  const int64_t T = static_cast<int64_t>(tokens.size());
  if (T < 2)
    return invalid_argument("perplexity: the text has " + std::to_string(T) +
                            " tokens, need at least 2");
  if (ctx < 2) return invalid_argument("perplexity: --ctx must be >= 2");
  if (ctx > m.config().max_position_embeddings) {
    return invalid_argument("perplexity: --ctx " + std::to_string(ctx) +
                            " exceeds the model's context of " +
                            std::to_string(m.config().max_position_embeddings) + " tokens");
  }
  if (stride < 1 || stride > ctx) return invalid_argument("perplexity: --stride must be in 1..ctx");
  const int64_t V = m.config().vocab_size;
  std::vector<double> nll;
  std::vector<float> logits;
  PplResult r;
  r.ctx = ctx;
  r.stride = stride;
  const auto t0 = std::chrono::steady_clock::now();
  int64_t prev_end = 0;
  for (int64_t begin = 0;; begin += stride) {
    const int64_t end = std::min(begin + ctx, T);
    const int64_t n = end - begin;
    const int64_t first = std::max<int64_t>(prev_end, begin + 1);  // first scored position
    logits.resize(static_cast<size_t>(n * V));
    m.reset();
    SS_RETURN_IF_ERROR(m.forward(tokens.data() + begin, n, logits.data()));
    r.forwarded_tokens += n;
    for (int64_t p = first; p < end; ++p) {
      const float* lg = logits.data() + (p - 1 - begin) * V;
      const float mx = *std::max_element(lg, lg + V);
      double se = 0;
      for (int64_t v = 0; v < V; ++v) se += std::exp(static_cast<double>(lg[v] - mx));
      nll.push_back(std::log(se) + mx - lg[tokens[static_cast<size_t>(p)]]);
    }
    prev_end = end;
    if (end == T) break;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.tokens_per_s = static_cast<double>(r.forwarded_tokens) / r.seconds;
  const double n = static_cast<double>(nll.size());
  const double mean = std::accumulate(nll.begin(), nll.end(), 0.0) / n;
  double var = 0;
  for (double x : nll) var += (x - mean) * (x - mean);
  var /= std::max(1.0, n - 1);
  r.scored_tokens = static_cast<int64_t>(nll.size());
  r.nll_mean = mean;
  r.nll_stderr = std::sqrt(var / n);
  r.ppl = std::exp(mean);
  r.ppl_stderr = r.ppl * r.nll_stderr;
  if (!std::isfinite(r.ppl)) return internal_error("perplexity: non-finite result (NaN logits?)");
  return r;
}

Expected<std::map<std::string, std::vector<float>>> calibrate_act_norms(
    Model& m, const std::vector<int32_t>& tokens, int64_t ctx) {
  if (tokens.empty()) return invalid_argument("calibration: the calibration text has no tokens");
  ctx = std::min(ctx, m.config().max_position_embeddings);
  m.set_collect_act_norms(true);
  for (size_t b = 0; b < tokens.size(); b += static_cast<size_t>(ctx)) {
    const int64_t n = std::min<int64_t>(ctx, static_cast<int64_t>(tokens.size() - b));
    m.reset();
    Status s = m.forward(tokens.data() + b, n, nullptr);
    if (!s.ok()) {
      m.set_collect_act_norms(false);
      return s;
    }
  }
  m.set_collect_act_norms(false);
  m.reset();
  return m.act_norms();
}

int32_t sample_token(const float* logits, int64_t vocab, float temperature, float top_p,
                     SamplerState* st) {
  if (temperature <= 0.0f)
    return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
  std::vector<std::pair<float, int32_t>> p(static_cast<size_t>(vocab));
  const float mx = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v) {
    const float e = std::exp((logits[v] - mx) / temperature);
    p[static_cast<size_t>(v)] = {e, static_cast<int32_t>(v)};
    sum += e;
  }
  std::sort(p.begin(), p.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  double cum = 0;
  size_t keep = 0;
  while (keep < p.size()) {
    cum += p[keep].first / sum;
    ++keep;
    if (cum >= top_p) break;
  }
  // xorshift64*: uniform in [0, cum)
  st->rng ^= st->rng >> 12;
  st->rng ^= st->rng << 25;
  st->rng ^= st->rng >> 27;
  const double u =
      static_cast<double>((st->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0 * cum;
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += p[i].first / sum;
    if (u < acc) return p[i].second;
  }
  return p[keep - 1].second;
}

}  // namespace slidesparse
