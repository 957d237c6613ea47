// Byte-level BPE tokenizer (GPT-2 family: SmolLM2, Llama 3, Qwen2) from a tokenizer.json or from
// GGUF metadata (tokenizer.ggml.*). Pre-tokenization is GPT-2's regex, implemented by hand, with
// optional single-digit splitting (SmolLM2); special tokens are matched verbatim first.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "slidesparse/status.h"

namespace slidesparse {

class GgufFile;

class Tokenizer {
 public:
  static Expected<Tokenizer> from_gguf(const GgufFile& f);
  static Expected<Tokenizer> from_json_file(const std::string& path);
  // Tokenizer of a model path: GGUF file, or a directory with tokenizer.json.
  static Expected<Tokenizer> from_model_path(const std::string& path);

  std::vector<int32_t> encode(const std::string& text) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  std::string piece(int32_t id) const;  // bytes of one token
  int64_t vocab_size() const { return static_cast<int64_t>(tokens_.size()); }
  int32_t token_id(const std::string& token) const;  // -1 if absent (token in byte-level form)
  bool split_digits() const { return split_digits_; }

  // Pre-tokenizer chunks of `text` (no special-token handling): exposed for tests.
  std::vector<std::string> pre_tokenize(const std::string& text) const;

 private:
  Status build(std::vector<std::string> tokens, const std::vector<std::string>& merges,
               const std::vector<int32_t>& special_ids, const std::string& origin);
  void bpe(const std::string& chunk, std::vector<int32_t>* out) const;

  std::vector<std::string> tokens_;  // id -> token in byte-level unicode form
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<std::string, int32_t> merge_rank_;  // "a b" -> rank
  std::vector<std::string> specials_;                    // matched verbatim, longest first
  bool split_digits_ = false;
  bool special_first_[256] = {};
  int32_t unk_ = 0;  // id of bytes without a token
  mutable std::shared_ptr<std::unordered_map<std::string, std::vector<int32_t>>> cache_;
};

}  // namespace slidesparse
