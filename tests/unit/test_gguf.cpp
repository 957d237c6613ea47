// GGUF reader: a synthetic file written here (every dequantized type checked against values
// computed by hand), every truncation of it rejected cleanly, bad headers, and the embedded model.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "slidesparse/dtype.h"
#include "slidesparse/gguf.h"

using namespace slidesparse;
namespace fs = std::filesystem;

namespace {

std::string tmp_dir() {
  std::string d = std::string(SS_TEST_TMP) + "/gguf_" + std::to_string(::getpid());
  fs::create_directories(d);
  return d;
}

struct W {
  std::string b;
  template <class T>
  void pod(T v) {
    b.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    b += s;
  }
  void kv_u32(const std::string& k, uint32_t v) {
    str(k);
    pod<uint32_t>(4);
    pod(v);
  }
  void kv_f32(const std::string& k, float v) {
    str(k);
    pod<uint32_t>(6);
    pod(v);
  }
  void kv_str(const std::string& k, const std::string& v) {
    str(k);
    pod<uint32_t>(8);
    str(v);
  }
};

struct Synth {
  std::string bytes;
  std::vector<float> q41, q80, f32;  // expected dequantized values
};

// 3 tensors: "a" Q4_1 [2, 64], "b" Q8_0 [1, 32], "c" F32 [5].
Synth make_file(uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> U(-1, 1);
  std::string data_a, data_b, data_c;
  Synth s;
  for (int blk = 0; blk < 4; ++blk) {
    const uint16_t d = float_to_fp16(U(rng) * 0.1f), m = float_to_fp16(U(rng));
    uint8_t qs[16];
    for (auto& q : qs) q = static_cast<uint8_t>(rng());
    data_a.append(reinterpret_cast<const char*>(&d), 2);
    data_a.append(reinterpret_cast<const char*>(&m), 2);
    data_a.append(reinterpret_cast<const char*>(qs), 16);
    float v[32];
    for (int j = 0; j < 16; ++j) {
      v[j] = static_cast<float>(qs[j] & 15) * fp16_to_float(d) + fp16_to_float(m);
      v[j + 16] = static_cast<float>(qs[j] >> 4) * fp16_to_float(d) + fp16_to_float(m);
    }
    s.q41.insert(s.q41.end(), v, v + 32);
  }
  {
    const uint16_t d = float_to_fp16(0.037f);
    data_b.append(reinterpret_cast<const char*>(&d), 2);
    for (int j = 0; j < 32; ++j) {
      const auto q = static_cast<int8_t>(rng());
      data_b.push_back(static_cast<char>(q));
      s.q80.push_back(static_cast<float>(q) * fp16_to_float(d));
    }
  }
  for (int j = 0; j < 5; ++j) {
    const float f = U(rng);
    data_c.append(reinterpret_cast<const char*>(&f), 4);
    s.f32.push_back(f);
  }
  W w;
  w.b = "GGUF";
  w.pod<uint32_t>(3);
  w.pod<uint64_t>(3);
  w.pod<uint64_t>(2);
  w.kv_str("general.architecture", "llama");
  w.kv_u32("llama.block_count", 1);
  auto tinfo = [&](const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t off) {
    w.str(name);
    w.pod<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (auto n : ne) w.pod(n);
    w.pod(type);
    w.pod(off);
  };
  const uint64_t off_b = (data_a.size() + 31) / 32 * 32, off_c = off_b + 64;
  tinfo("a", {64, 2}, 3, 0);
  tinfo("b", {32, 1}, 8, off_b);
  tinfo("c", {5}, 0, off_c);
  w.b.resize((w.b.size() + 31) / 32 * 32, '\0');
  const size_t base = w.b.size();
  w.b += data_a;
  w.b.resize(base + off_b, '\0');
  w.b += data_b;
  w.b.resize(base + off_c, '\0');
  w.b += data_c;
  s.bytes = w.b;
  return s;
}

std::string write(const std::string& name, const std::string& bytes) {
  const std::string p = tmp_dir() + "/" + name;
  std::ofstream(p, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return p;
}

TEST(Gguf, SyntheticDequantizesExactly) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    Synth s = make_file(seed);
    auto f = GgufFile::open(write("ok.gguf", s.bytes));
    ASSERT_TRUE(f.ok()) << f.status().to_string();
    ASSERT_EQ(f->tensors().size(), 3u);
    EXPECT_EQ(f->find("general.architecture")->str, "llama");
    EXPECT_EQ(f->find("llama.block_count")->num, 1);
    auto a = f->read_f32("a"), b = f->read_f32("b"), c = f->read_f32("c");
    ASSERT_TRUE(a.ok() && b.ok() && c.ok());
    EXPECT_EQ(*a, s.q41);
    EXPECT_EQ(*b, s.q80);
    EXPECT_EQ(*c, s.f32);
    EXPECT_FALSE(f->read_f32("nope").ok());
  }
}

TEST(Gguf, EveryTruncationIsAnErrorNotACrash) {
  Synth s = make_file(7);
  const size_t header_end = s.bytes.size() - 64 - 20 * 4 - 20;  // roughly: inside the data
  for (size_t len = 0; len < s.bytes.size(); len += (len < header_end ? 1 : 7)) {
    auto f = GgufFile::open(write("trunc.gguf", s.bytes.substr(0, len)));
    ASSERT_FALSE(f.ok()) << "length " << len;
    EXPECT_EQ(f.status().message().find('\n'), std::string::npos);
    EXPECT_NE(f.status().message().find("trunc.gguf"), std::string::npos) << f.status().message();
  }
}

TEST(Gguf, BadHeaders) {
  Synth s = make_file(9);
  std::string bad = s.bytes;
  bad[0] = 'X';
  EXPECT_EQ(GgufFile::open(write("magic.gguf", bad)).status().code(), StatusCode::kFormatError);
  bad = s.bytes;
  bad[4] = 9;  // version 9
  EXPECT_EQ(GgufFile::open(write("ver.gguf", bad)).status().code(), StatusCode::kUnsupported);
  bad = s.bytes;
  const uint64_t huge = ~uint64_t{0} / 2;
  std::memcpy(&bad[24], &huge, 8);  // length of the first key
  EXPECT_EQ(GgufFile::open(write("len.gguf", bad)).status().code(), StatusCode::kFormatError);
  // Random byte flips: never a crash.
  std::mt19937 rng(5);
  for (int i = 0; i < 300; ++i) {
    bad = s.bytes;
    for (int k = 0; k < 3; ++k) bad[rng() % 200] = static_cast<char>(rng());
    auto f = GgufFile::open(write("flip.gguf", bad));
    if (f.ok())
      for (const auto& t : f->tensors()) (void)f->read_f32(t.name);
  }
  EXPECT_EQ(GgufFile::open(tmp_dir() + "/missing.gguf").status().code(), StatusCode::kNotFound);
  // An array claiming 10^7 elements in a 60-byte file: rejected before any allocation.
  W w;
  w.b = "GGUF";
  w.pod<uint32_t>(3);
  w.pod<uint64_t>(0);
  w.pod<uint64_t>(1);
  w.str("tokenizer.ggml.token_type");
  w.pod<uint32_t>(9);  // array
  w.pod<uint32_t>(0);  // of u8
  w.pod<uint64_t>(10000000);
  auto arr = GgufFile::open(write("arr.gguf", w.b));
  EXPECT_EQ(arr.status().code(), StatusCode::kFormatError);
  EXPECT_NE(arr.status().message().find("token_type"), std::string::npos) << arr.status().message();
}

// gguf_model_config's consistency checks on a header-only Llama: hidden 8, vocab 4, 2 blocks.
TEST(Gguf, ModelConfigChecksVocabTokensAndBlocks) {
  struct Opt {
    int64_t vocab_meta = -1, eos = 2, tokens = 4;
    const char* extra_tensor = nullptr;
  };
  auto make = [](const Opt& o) {
    std::vector<std::pair<std::string, uint32_t>> u32 = {
        {"llama.embedding_length", 8},     {"llama.feed_forward_length", 16},
        {"llama.block_count", 2},          {"llama.attention.head_count", 2},
        {"llama.context_length", 64},      {"tokenizer.ggml.bos_token_id", 1},
        {"tokenizer.ggml.eos_token_id", 0}};
    u32.back().second = static_cast<uint32_t>(o.eos);
    if (o.vocab_meta >= 0) u32.push_back({"llama.vocab_size", static_cast<uint32_t>(o.vocab_meta)});
    std::vector<std::string> tensors = {"token_embd.weight"};
    if (o.extra_tensor) tensors.push_back(o.extra_tensor);
    W w;
    w.b = "GGUF";
    w.pod<uint32_t>(3);
    w.pod<uint64_t>(tensors.size());
    w.pod<uint64_t>(2 + u32.size());
    w.kv_str("general.architecture", "llama");
    for (const auto& [k, v] : u32) w.kv_u32(k, v);
    w.str("tokenizer.ggml.tokens");
    w.pod<uint32_t>(9);  // array
    w.pod<uint32_t>(8);  // of strings
    w.pod<uint64_t>(static_cast<uint64_t>(o.tokens));
    for (int64_t i = 0; i < o.tokens; ++i) w.str("t" + std::to_string(i));
    for (size_t i = 0; i < tensors.size(); ++i) {  // F32 [8, 4] each (GGUF order: ne[0] = 8)
      w.str(tensors[i]);
      w.pod<uint32_t>(2);
      w.pod<uint64_t>(8);
      w.pod<uint64_t>(4);
      w.pod<uint32_t>(0);
      w.pod<uint64_t>(i * 128);
    }
    w.b.resize((w.b.size() + 31) / 32 * 32, '\0');
    w.b.append(128 * tensors.size(), '\0');
    return w.b;
  };
  auto config_of = [&](const Opt& o) -> Expected<ModelConfig> {
    SS_ASSIGN_OR_RETURN(GgufFile f, GgufFile::open(write("cfg.gguf", make(o))));
    return gguf_model_config(f);
  };
  Opt ok;
  ok.vocab_meta = 4;
  ok.extra_tensor = "blk.1.attn_norm.weight";
  auto c = config_of(ok);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->vocab_size, 4);
  EXPECT_EQ(c->bos_token_id, 1);
  ASSERT_EQ(c->eos_token_ids, std::vector<int64_t>{2});
  struct Bad {
    Opt o;
    std::string needle;
  } bad[] = {
      {{5, 2, 4, nullptr}, "llama.vocab_size = 5 but token_embd.weight has 4 rows"},
      {{-1, 4, 4, nullptr}, "eos_token_id = 4 is outside the vocabulary [0, 4)"},
      {{-1, 2, 5, nullptr}, "5 tokenizer tokens but token_embd.weight has 4 rows"},
      {{-1, 2, 4, "blk.2.attn_norm.weight"},
       "tensor 'blk.2.attn_norm.weight' is past the last block (llama.block_count = 2)"},
  };
  for (const Bad& b : bad) {
    auto r = config_of(b.o);
    ASSERT_FALSE(r.ok()) << b.needle;
    EXPECT_NE(r.status().message().find(b.needle), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("cfg.gguf"), std::string::npos) << r.status().message();
  }
}

TEST(Gguf, EmbeddedSmolLM2) {
  const std::string p =
      std::string(SS_SOURCE_DIR) + "/.deps/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(p)) GTEST_SKIP() << "no embedded model (run scripts/setup.sh)";
  auto f = GgufFile::open(p);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  auto c = gguf_model_config(*f);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->hidden_size, 576);
  EXPECT_EQ(c->num_layers, 30);
  EXPECT_EQ(c->num_heads, 9);
  EXPECT_EQ(c->num_kv_heads, 3);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->vocab_size, 49152);
  EXPECT_TRUE(c->tie_word_embeddings);
  // q rows un-permuted: HF row h*64 + j*32 + i == GGUF row h*64 + 2i + j.
  auto g = f->read_f32("blk.0.attn_q.weight");
  auto hf = gguf_read_hf_tensor(*f, *c, "model.layers.0.self_attn.q_proj.weight");
  ASSERT_TRUE(g.ok() && hf.ok());
  for (int h : {0, 8})
    for (int i : {0, 5, 31})
      for (int j : {0, 1})
        for (int k : {0, 575})
          EXPECT_EQ((*hf)[static_cast<size_t>((h * 64 + j * 32 + i) * 576 + k)],
                    (*g)[static_cast<size_t>((h * 64 + 2 * i + j) * 576 + k)]);
}

}  // namespace
