// Byte-level BPE. Unicode classes are approximated without tables: letters are ASCII letters and
// every non-ASCII code point outside the Latin-1/General Punctuation symbol ranges; numbers are
// ASCII digits; whitespace is ASCII whitespace plus U+0085, U+00A0, U+1680, U+2000..U+200A,
// U+2028/9, U+202F, U+205F, U+3000. Exact for ASCII text (the evaluation texts are ASCII).
#include "slidesparse/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>

#include "slidesparse/gguf.h"

namespace slidesparse {
namespace {

// GPT-2's byte <-> printable code point table.
struct ByteTable {
  uint32_t to_cp[256];
  std::unordered_map<uint32_t, uint8_t> to_byte;
  ByteTable() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      to_cp[b] = keep ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
      to_byte[to_cp[b]] = static_cast<uint8_t>(b);
    }
  }
};
const ByteTable& bytes_table() {
  static const ByteTable t;
  return t;
}

void append_utf8(uint32_t cp, std::string* s) {
  if (cp < 0x80) {
    s->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    s->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes one code point at s[i]; invalid bytes decode as themselves (len 1).
uint32_t next_cp(const std::string& s, size_t i, size_t* len) {
  const auto c = static_cast<unsigned char>(s[i]);
  int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    *len = 1;
    return c;
  }
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < n; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc >> 6) != 2) {
      *len = 1;
      return c;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  *len = static_cast<size_t>(n);
  return cp;
}

bool is_space(uint32_t c) {
  return c == ' ' || (c >= 9 && c <= 13) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}
bool is_number(uint32_t c) {
  return c >= '0' && c <= '9';
}
bool is_letter(uint32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (is_space(c)) return false;
  if (c >= 0xA1 && c <= 0xBF) return c == 0xAA || c == 0xB5 || c == 0xBA;
  if (c == 0xD7 || c == 0xF7) return false;
  if (c >= 0x2010 && c <= 0x2BFF) return false;  // punctuation, symbols, arrows, math
  if (c >= 0x3000 && c <= 0x303F) return false;
  if (c >= 0xFF00 && c <= 0xFF0F) return false;
  return c >= 0xC0;
}

struct Cp {
  uint32_t c;
  size_t pos, len;
};

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void gpt2_split(const std::string& text, const std::vector<Cp>& cps, size_t b, size_t e,
                std::vector<std::string>* out) {
  auto emit = [&](size_t i, size_t j) {
    const size_t p0 = cps[i].pos, p1 = cps[j - 1].pos + cps[j - 1].len;
    out->push_back(text.substr(p0, p1 - p0));
  };
  size_t i = b;
  while (i < e) {
    const uint32_t c = cps[i].c;
    if (c == '\'' && i + 1 < e) {
      const uint32_t c1 = cps[i + 1].c, c2 = i + 2 < e ? cps[i + 2].c : 0;
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        emit(i, i + 2);
        i += 2;
        continue;
      }
      if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
        emit(i, i + 3);
        i += 3;
        continue;
      }
    }
    size_t j = i;
    if (c == ' ' && i + 1 < e && !is_space(cps[i + 1].c)) j = i + 1;
    const uint32_t cj = cps[j].c;
    if (!is_space(cj)) {
      size_t k = j + 1;
      if (is_letter(cj)) {
        while (k < e && is_letter(cps[k].c)) ++k;
      } else if (is_number(cj)) {
        while (k < e && is_number(cps[k].c)) ++k;
      } else {
        while (k < e && !is_space(cps[k].c) && !is_letter(cps[k].c) && !is_number(cps[k].c)) ++k;
      }
      emit(i, k);
      i = k;
      continue;
    }
    size_t k = i;
    while (k < e && is_space(cps[k].c)) ++k;
    if (k < e && k - i >= 2) k -= 1;  // \s+(?!\S): leave the last space to the next word
    emit(i, k);
    i = k;
  }
}

std::string read_file(const std::string& path, Status* st) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *st = not_found("tokenizer '" + path + "': cannot open file");
    return {};
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::vector<std::string> Tokenizer::pre_tokenize(const std::string& text) const {
  std::vector<Cp> cps;
  for (size_t i = 0; i < text.size();) {
    size_t len = 1;
    const uint32_t c = next_cp(text, i, &len);
    cps.push_back({c, i, len});
    i += len;
  }
  std::vector<std::string> out;
  size_t b = 0;
  for (size_t i = 0; i <= cps.size(); ++i) {
    if (i == cps.size() || (split_digits_ && is_number(cps[i].c))) {
      gpt2_split(text, cps, b, i, &out);
      if (i < cps.size()) out.push_back(text.substr(cps[i].pos, cps[i].len));
      b = i + 1;
    }
  }
  return out;
}

Status Tokenizer::build(std::vector<std::string> tokens, const std::vector<std::string>& merges,
                        const std::vector<int32_t>& special_ids, const std::string& origin) {
  if (tokens.empty()) return format_error("tokenizer '" + origin + "': empty vocabulary");
  tokens_ = std::move(tokens);
  for (size_t i = 0; i < tokens_.size(); ++i) ids_.emplace(tokens_[i], static_cast<int32_t>(i));
  for (size_t r = 0; r < merges.size(); ++r) {
    const std::string& m = merges[r];
    const size_t sp = m.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= m.size()) {
      return format_error("tokenizer '" + origin + "': merge " + std::to_string(r) + " '" + m +
                          "' is not 'a b'");
    }
    merge_rank_.emplace(m, static_cast<int32_t>(r));
  }
  // Printable ASCII must be tokens (byte-level BPE); other missing bytes encode as unk_.
  const ByteTable& bt = bytes_table();
  for (int b = 32; b < 127; ++b) {
    std::string s;
    append_utf8(bt.to_cp[b], &s);
    if (!ids_.count(s)) {
      return format_error("tokenizer '" + origin + "': byte " + std::to_string(b) +
                          " has no token (not a byte-level BPE vocabulary)");
    }
  }
  for (int32_t id : special_ids) {
    if (id < 0 || id >= static_cast<int32_t>(tokens_.size())) {
      return format_error("tokenizer '" + origin + "': special token id " + std::to_string(id) +
                          " outside the vocabulary");
    }
    if (!tokens_[id].empty()) specials_.push_back(tokens_[id]);
  }
  for (const std::string& sp : specials_) special_first_[static_cast<unsigned char>(sp[0])] = true;
  std::sort(specials_.begin(), specials_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  cache_ = std::make_shared<std::unordered_map<std::string, std::vector<int32_t>>>();
  return Status::Ok();
}

Expected<Tokenizer> Tokenizer::from_gguf(const GgufFile& f) {
  const GgufValue* model = f.find("tokenizer.ggml.model");
  if (!model || model->str != "gpt2") {
    return unsupported("GGUF '" + f.path() +
                       "': tokenizer.ggml.model must be 'gpt2' (byte-level BPE)");
  }
  const GgufValue* toks = f.find("tokenizer.ggml.tokens");
  const GgufValue* merges = f.find("tokenizer.ggml.merges");
  if (!toks || toks->kind != GgufValue::Kind::kArray || toks->strs.empty() || !merges ||
      merges->kind != GgufValue::Kind::kArray) {
    return format_error("GGUF '" + f.path() + "': missing tokenizer.ggml.tokens/merges");
  }
  std::vector<int32_t> special;
  if (const GgufValue* types = f.find("tokenizer.ggml.token_type")) {
    for (size_t i = 0; i < types->nums.size(); ++i)
      if (types->nums[i] == 3 || types->nums[i] == 4) special.push_back(static_cast<int32_t>(i));
  }
  Tokenizer t;
  const GgufValue* pre = f.find("tokenizer.ggml.pre");
  // llama.cpp pre-tokenizers that split digits one by one before GPT-2's regex.
  t.split_digits_ =
      pre && (pre->str == "smollm" || pre->str == "starcoder" || pre->str == "refact");
  SS_RETURN_IF_ERROR(t.build(toks->strs, merges->strs, special, f.path()));
  return t;
}

Expected<Tokenizer> Tokenizer::from_json_file(const std::string& path) {
  Status st;
  const std::string text = read_file(path, &st);
  SS_RETURN_IF_ERROR(st);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("model") || !j["model"].is_object()) {
    return format_error("tokenizer '" + path + "': not a tokenizer.json (no 'model' object)");
  }
  const auto& m = j["model"];
  if (m.value("type", "") != "BPE" || !m.contains("vocab") || !m["vocab"].is_object()) {
    return unsupported("tokenizer '" + path + "': model type must be BPE with a vocab");
  }
  std::vector<std::string> tokens;
  std::vector<int32_t> special;
  auto put = [&](const std::string& s, int64_t id) -> Status {
    if (id < 0 || id > (1 << 24))
      return format_error("tokenizer '" + path + "': bad id for '" + s + "'");
    if (static_cast<size_t>(id) >= tokens.size()) tokens.resize(static_cast<size_t>(id) + 1);
    tokens[static_cast<size_t>(id)] = s;
    return Status::Ok();
  };
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it.value().is_number_integer())
      return format_error("tokenizer '" + path + "': non-integer id");
    SS_RETURN_IF_ERROR(put(it.key(), it.value().get<int64_t>()));
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a.contains("content")) continue;
      SS_RETURN_IF_ERROR(put(a["content"].get<std::string>(), a["id"].get<int64_t>()));
      special.push_back(a["id"].get<int32_t>());
    }
  }
  std::vector<std::string> merges;
  if (m.contains("merges") && m["merges"].is_array()) {
    for (const auto& e : m["merges"]) {
      if (e.is_string()) {
        merges.push_back(e.get<std::string>());
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        merges.push_back(e[0].get<std::string>() + " " + e[1].get<std::string>());
      } else {
        return format_error("tokenizer '" + path + "': malformed merge entry");
      }
    }
  }
  Tokenizer t;
  t.split_digits_ = j.contains("pre_tokenizer") &&
                    j["pre_tokenizer"].dump().find("\"Digits\"") != std::string::npos;
  SS_RETURN_IF_ERROR(t.build(std::move(tokens), merges, special, path));
  return t;
}

Expected<Tokenizer> Tokenizer::from_model_path(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    return not_found("model '" + path + "': no such file or directory");
  if (S_ISDIR(st.st_mode)) return from_json_file(path + "/tokenizer.json");
  SS_ASSIGN_OR_RETURN(GgufFile f, GgufFile::open(path));
  return from_gguf(f);
}

void Tokenizer::bpe(const std::string& chunk, std::vector<int32_t>* out) const {
  auto hit = cache_->find(chunk);
  if (hit != cache_->end()) {
    out->insert(out->end(), hit->second.begin(), hit->second.end());
    return;
  }
  const ByteTable& bt = bytes_table();
  std::vector<std::string> sym;
  for (unsigned char ch : chunk) {
    std::string s;
    append_utf8(bt.to_cp[ch], &s);
    sym.push_back(std::move(s));
  }
  while (sym.size() > 1) {
    int32_t best = INT32_MAX;
    size_t at = 0;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      auto it = merge_rank_.find(sym[i] + " " + sym[i + 1]);
      if (it != merge_rank_.end() && it->second < best) {
        best = it->second;
        at = i;
      }
    }
    if (best == INT32_MAX) break;
    sym[at] += sym[at + 1];
    sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(at) + 1);
  }
  std::vector<int32_t> ids;
  for (const std::string& s : sym) {
    auto it = ids_.find(s);
    if (it != ids_.end()) {
      ids.push_back(it->second);
    } else {  // a merge result missing from the vocab: fall back to its bytes
      for (size_t i = 0; i < s.size();) {
        size_t len = 1;
        const uint32_t cp = next_cp(s, i, &len);
        std::string one;
        append_utf8(cp, &one);
        auto b = ids_.find(one);
        ids.push_back(b != ids_.end() ? b->second : unk_);
        i += len;
      }
    }
  }
  out->insert(out->end(), ids.begin(), ids.end());
  if (cache_->size() < 200000) cache_->emplace(chunk, std::move(ids));
}

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int32_t> out;
  size_t b = 0;
  auto plain = [&](size_t e) {
    if (e <= b) return;
    for (const std::string& c : pre_tokenize(text.substr(b, e - b))) bpe(c, &out);
  };
  for (size_t i = 0; i < text.size();) {
    bool matched = false;
    if (special_first_[static_cast<unsigned char>(text[i])]) {
      for (const std::string& s : specials_) {
        if (text.compare(i, s.size(), s) == 0) {
          plain(i);
          out.push_back(ids_.at(s));
          i += s.size();
          b = i;
          matched = true;
          break;
        }
      }
    }
    if (!matched) ++i;
  }
  plain(text.size());
  return out;
}

std::string Tokenizer::piece(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(tokens_.size())) return {};
  const std::string& t = tokens_[static_cast<size_t>(id)];
  const ByteTable& bt = bytes_table();
  std::string out;
  for (size_t i = 0; i < t.size();) {
    size_t len = 1;
    const uint32_t cp = next_cp(t, i, &len);
    auto it = bt.to_byte.find(cp);
    if (it != bt.to_byte.end()) {
      out.push_back(static_cast<char>(it->second));
    } else {
      out.append(t, i, len);  // special tokens are stored verbatim
    }
    i += len;
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  for (int32_t id : ids) s += piece(id);
  return s;
}

int32_t Tokenizer::token_id(const std::string& token) const {
  auto it = ids_.find(token);
  return it == ids_.end() ? -1 : it->second;
}

}  // namespace slidesparse
