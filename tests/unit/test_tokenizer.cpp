// Byte-level BPE tokenizer of the embedded SmolLM2 GGUF: pre-tokenizer splits, known token ids,
// round trips on the fortunes text and on random byte strings.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "slidesparse/engine.h"
#include "slidesparse/gguf.h"
#include "slidesparse/tokenizer.h"

using namespace slidesparse;

namespace {

const Tokenizer* tok() {
  static std::unique_ptr<Tokenizer> t = [] {
    const std::string p =
        std::string(SS_SOURCE_DIR) + "/.deps/models/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::filesystem::exists(p)) return std::unique_ptr<Tokenizer>();
    auto f = GgufFile::open(p);
    auto r = Tokenizer::from_gguf(*f);
    return r.ok() ? std::make_unique<Tokenizer>(std::move(*r)) : std::unique_ptr<Tokenizer>();
  }();
  return t.get();
}

#define NEED_TOK() \
  if (!tok()) GTEST_SKIP() << "no embedded model (run scripts/setup.sh)"

TEST(Tokenizer, PreTokenizerSplits) {
  NEED_TOK();
  using V = std::vector<std::string>;
  EXPECT_EQ(tok()->pre_tokenize("Hello world's  end!"),
            (V{"Hello", " world", "'s", " ", " end", "!"}));
  EXPECT_EQ(tok()->pre_tokenize("in 2024, x"), (V{"in", " ", "2", "0", "2", "4", ",", " x"}));
  EXPECT_EQ(tok()->pre_tokenize("a\n\nb  "), (V{"a", "\n", "\n", "b", "  "}));
  EXPECT_EQ(tok()->pre_tokenize(" ...ok"), (V{" ...", "ok"}));
  EXPECT_EQ(tok()->pre_tokenize("we'll they're"), (V{"we", "'ll", " they", "'re"}));
}

TEST(Tokenizer, KnownIds) {
  NEED_TOK();
  // Single tokens: the id of the word's own vocabulary entry (Ġ = the space byte).
  for (const char* w : {"Ġthe", "Ġworld", "Hello", "Ġcomputer", "ing"}) {
    std::string text = w;
    if (text.rfind("Ġ", 0) == 0) text = " " + text.substr(2);
    const int32_t id = tok()->token_id(w);
    ASSERT_GE(id, 0) << w;
    EXPECT_EQ(tok()->encode(text), std::vector<int32_t>{id}) << w;
  }
  EXPECT_EQ(tok()->encode("<|im_start|>user"), (std::vector<int32_t>{1, tok()->token_id("user")}));
  EXPECT_EQ(tok()->encode("<|endoftext|>"), std::vector<int32_t>{0});
  EXPECT_EQ(tok()->piece(2), "<|im_end|>");
}

TEST(Tokenizer, RoundTrips) {
  NEED_TOK();
  auto text = default_eval_text();
  if (text.ok()) {
    const std::string t = text->substr(0, 20000);
    const auto ids = tok()->encode(t);
    EXPECT_LT(ids.size(), t.size() / 2);  // BPE compresses English prose
    EXPECT_EQ(tok()->decode(ids), t);
  }
  std::mt19937 rng(11);
  const std::string alphabet = "ab cdXY'Z\n\t09.,!?é€😀 ";
  for (int i = 0; i < 200; ++i) {
    std::string s;
    const int n = static_cast<int>(rng() % 40);
    for (int k = 0; k < n; ++k) s += alphabet[rng() % alphabet.size()];
    EXPECT_EQ(tok()->decode(tok()->encode(s)), s);  // may split UTF-8 sequences: bytes round trip
  }
}

TEST(Tokenizer, BadJson) {
  const std::string d = std::string(SS_TEST_TMP) + "/tok_" + std::to_string(::getpid());
  std::filesystem::create_directories(d);
  EXPECT_EQ(Tokenizer::from_json_file(d + "/missing.json").status().code(), StatusCode::kNotFound);
  { std::ofstream(d + "/bad.json") << "{ not json"; }
  EXPECT_EQ(Tokenizer::from_json_file(d + "/bad.json").status().code(), StatusCode::kFormatError);
}

}  // namespace
