// Engine: the CPU SlideSparse linear (dense-form sgemm) against reference_sparse_linear (int8
// bit-exact, fp8/none within stated tolerances), the model's KV-cache path against a full
// forward, load-time pruning against a converted SlideSparse checkpoint (identical logits), and
// the sliding-window perplexity bookkeeping.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "slidesparse/checkpoint.h"
#include "slidesparse/engine.h"
#include "slidesparse/reference.h"
#include "slidesparse/synth.h"

using namespace slidesparse;
namespace fs = std::filesystem;

namespace {

std::string tmp_dir() {
  std::string d = std::string(SS_TEST_TMP) + "/engine_" + std::to_string(::getpid());
  fs::create_directories(d);
  return d;
}

TEST(EngineLinear, NmLinearMatchesReference) {
  auto be = make_cpu_backend();
  std::mt19937 rng(1234);
  std::normal_distribution<float> nd(0, 1);
  for (const char* ps : {"2:4", "4:6", "6:8", "8:10"})
    for (QuantMode q : {QuantMode::kInt8, QuantMode::kFp8, QuantMode::kNone})
      for (int64_t K : {37, 72, 1100}) {
        const Pattern p = *Pattern::parse(ps);
        const int64_t M = 5, N = 19;
        std::vector<float> w(static_cast<size_t>(N * K)), x(static_cast<size_t>(M * K)), bias(N);
        for (auto& v : w) v = nd(rng);
        for (auto& v : x) v = nd(rng) * 3;
        for (auto& v : bias) v = nd(rng);
        auto t = nm_compress(w.data(), N, K, p, PruneMethod::kMagnitude, nullptr, q, DType::kBF16);
        ASSERT_TRUE(t.ok()) << t.status().to_string();
        auto lin = be->make_nm_linear(*t, bias);
        ASSERT_TRUE(lin.ok()) << lin.status().to_string();
        std::vector<float> y(static_cast<size_t>(M * N), NAN), ref(y.size(), NAN);
        (*lin)->forward(x.data(), M, y.data());
        ASSERT_TRUE(reference_sparse_linear(x.data(), M, *t, bias.data(), ref.data()).ok());
        double maxabs = 0;
        for (float v : ref) maxabs = std::max(maxabs, std::fabs(static_cast<double>(v)));
        ASSERT_GT(maxabs, 0.1);
        for (size_t i = 0; i < y.size(); ++i) {
          if (q == QuantMode::kInt8) {
            ASSERT_EQ(y[i], ref[i]) << ps << " K=" << K << " i=" << i;  // bit-exact
          } else {  // fp32 accumulation order differs from the fp64 reference
            ASSERT_NEAR(y[i], ref[i], 2e-5 * maxabs * std::sqrt(static_cast<double>(K) / 64))
                << ps << " " << quant_mode_name(q) << " K=" << K;
          }
        }
      }
}

TEST(EngineLinear, DenseLinearMatchesReference) {
  auto be = make_cpu_backend();
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0, 1);
  const int64_t M = 3, N = 11, K = 97;
  std::vector<float> w(N * K), x(M * K), b(N), y(M * N, NAN), ref(M * N);
  for (auto& v : w) v = nd(rng);
  for (auto& v : x) v = nd(rng);
  for (auto& v : b) v = nd(rng);
  auto lin = be->make_dense_linear(w, N, K, b);
  lin->forward(x.data(), M, y.data());
  gemm_ref_f32(x.data(), w.data(), ref.data(), M, N, K, true);
  for (int64_t i = 0; i < M * N; ++i) EXPECT_NEAR(y[i], ref[i] + b[i % N], 1e-4);
}

std::string synth(const std::string& arch) {
  const std::string d = tmp_dir() + "/" + arch;
  if (!fs::exists(d + "/config.json")) {
    SynthOptions o;
    o.arch = arch;
    o.out = d;
    o.seed = 3;
    Status s = synth_checkpoint(o);
    EXPECT_TRUE(s.ok()) << s.to_string();
  }
  return d;
}

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& t : ids) t = static_cast<int32_t>(rng() % vocab);
  return ids;
}

TEST(EngineModel, KvCacheMatchesFullForward) {
  auto be = make_cpu_backend();
  for (const char* arch : {"tiny-llama", "tiny-qwen2"}) {
    auto m = Model::load(synth(arch), be.get());
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    const int64_t V = (*m)->config().vocab_size, n = 13;
    auto ids = random_ids(n, V, 5);
    std::vector<float> full(static_cast<size_t>(n * V)), step(static_cast<size_t>(V));
    ASSERT_TRUE((*m)->forward(ids.data(), n, full.data()).ok());
    (*m)->reset();
    // 7 tokens at once, then one at a time.
    std::vector<float> pre(static_cast<size_t>(7 * V));
    ASSERT_TRUE((*m)->forward(ids.data(), 7, pre.data()).ok());
    for (int64_t i = 0; i < 7 * V; ++i) ASSERT_NEAR(pre[i], full[i], 1e-4);
    for (int64_t t = 7; t < n; ++t) {
      ASSERT_TRUE((*m)->forward(&ids[t], 1, step.data()).ok());
      for (int64_t v = 0; v < V; ++v)
        ASSERT_NEAR(step[v], full[t * V + v], 1e-4) << arch << " t=" << t;
    }
    EXPECT_EQ((*m)->cache_len(), n);
    int32_t bad = static_cast<int32_t>(V);
    EXPECT_FALSE((*m)->forward(&bad, 1, step.data()).ok());
  }
}

TEST(EngineModel, LoadTimePruningEqualsConvertedCheckpoint) {
  auto be = make_cpu_backend();
  const std::string hf = synth("tiny-llama");
  for (QuantMode q : {QuantMode::kInt8, QuantMode::kNone}) {
    const std::string out = tmp_dir() + "/conv_" + quant_mode_name(q);
    auto src = open_hf_source(hf);
    ASSERT_TRUE(src.ok());
    ConvertOptions o;
    o.out = out;
    o.pattern = Pattern{6, 8};
    o.quant = q;
    o.force = true;
    ASSERT_TRUE(convert_checkpoint(**src, o).ok());
    SparsifyOptions sp;
    sp.enabled = true;
    sp.pattern = Pattern{6, 8};
    sp.quant = q;
    auto a = Model::load(out, be.get());
    auto b = Model::load(hf, be.get(), sp);
    ASSERT_TRUE(a.ok() && b.ok()) << a.status().to_string() << b.status().to_string();
    const int64_t V = (*a)->config().vocab_size, n = 9;
    auto ids = random_ids(n, V, 8);
    std::vector<float> la(static_cast<size_t>(n * V)), lb(la.size());
    ASSERT_TRUE((*a)->forward(ids.data(), n, la.data()).ok());
    ASSERT_TRUE((*b)->forward(ids.data(), n, lb.data()).ok());
    EXPECT_EQ(la, lb) << quant_mode_name(q);
    // and pruning changes the model
    auto d = Model::load(hf, be.get());
    std::vector<float> ld(la.size());
    ASSERT_TRUE((*d)->forward(ids.data(), n, ld.data()).ok());
    EXPECT_NE(la, ld);
    // A SlideSparse checkpoint cannot be pruned again.
    EXPECT_EQ(Model::load(out, be.get(), sp).status().code(), StatusCode::kInvalidArgument);
  }
}

// A tensor stored transposed has the right element count: the engine must still refuse it
// (it would otherwise run with the rows read as columns), naming the tensor and both shapes.
TEST(EngineModel, LoadRefusesTransposedTensors) {
  auto be = make_cpu_backend();
  const std::string hf = synth("tiny-llama");  // hidden 64, intermediate 172, vocab 256
  struct Case {
    const char* from;
    const char* to;
    const char* name;
  } cases[] = {
      {"\"shape\":[256,64]}", "\"shape\":[64,256]}", "model.embed_tokens.weight"},
      {"\"shape\":[64,172]}", "\"shape\":[172,64]}", "model.layers.0.mlp.down_proj.weight"}};
  for (const Case& k : cases) {
    const std::string d = tmp_dir() + "/transposed_" + std::to_string(&k - cases);
    fs::remove_all(d);
    fs::copy(hf, d);
    const std::string f = d + "/model.safetensors";
    std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
    std::string head(4096, '\0');
    io.read(&head[0], static_cast<std::streamsize>(head.size()));
    const size_t at = head.find(k.from, head.find(std::string("\"") + k.name + "\""));
    ASSERT_NE(at, std::string::npos) << k.name;
    io.clear();
    io.seekp(static_cast<std::streamoff>(at));
    io.write(k.to, static_cast<std::streamsize>(std::strlen(k.to)));
    io.close();
    auto m = Model::load(d, be.get());
    ASSERT_FALSE(m.ok()) << k.name;
    EXPECT_NE(m.status().message().find(std::string("tensor '") + k.name + "': expected shape"),
              std::string::npos)
        << m.status().message();
  }
}

TEST(EngineEval, PerplexityScoresEveryTokenOnceAndWandaNormsArePositive) {
  auto be = make_cpu_backend();
  auto m = Model::load(synth("tiny-llama"), be.get());
  ASSERT_TRUE(m.ok());
  auto ids = random_ids(50, (*m)->config().vocab_size, 2);
  for (int64_t stride : {4, 8, 16}) {
    auto r = eval_perplexity(**m, ids, 16, stride);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    // stride < ctx: every token but the first; stride == ctx: a window's first token has no
    // context and is not scored (windows start at 16 and 32).
    EXPECT_EQ(r->scored_tokens, stride < 16 ? 49 : 46) << stride;
    EXPECT_GT(r->ppl, 1.0);
    EXPECT_GT(r->ppl_stderr, 0.0);
  }
  EXPECT_FALSE(eval_perplexity(**m, ids, (*m)->config().max_position_embeddings + 1, 4).ok());
  auto norms = calibrate_act_norms(**m, ids, 16);
  ASSERT_TRUE(norms.ok());
  EXPECT_EQ(norms->size(), model_linears((*m)->config()).size());
  for (const auto& [name, v] : *norms)
    for (float x : v) ASSERT_GT(x, 0.0f) << name;
}

TEST(EngineEval, Sampling) {
  std::vector<float> lg = {0.1f, 3.0f, -1.0f, 2.9f};
  SamplerState st;
  EXPECT_EQ(sample_token(lg.data(), 4, 0.0f, 1.0f, &st), 1);
  int counts[4] = {};
  for (int i = 0; i < 2000; ++i) counts[sample_token(lg.data(), 4, 1.0f, 0.9f, &st)]++;
  EXPECT_EQ(counts[2], 0);  // outside the top-p nucleus
  EXPECT_GT(counts[1], 600);
  EXPECT_GT(counts[3], 600);
}

}  // namespace
