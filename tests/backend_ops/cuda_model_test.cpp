// The CUDA engine (CudaModel) against the CPU engine (slidesparse::Model, fp32, the reference) on
// the same synthetic checkpoints: prefill logits of the last token and 4 teacher-forced greedy
// decode steps, for dense bf16/fp16/int8 and every pattern x quant in sparse and dense mode;
// batched prefill/decode == single-sequence runs; CUDA-graph decode == eager decode (bit-exact);
// the profile; bad inputs.
//
// Tolerance of the parity test: max |gpu - cpu| <= tol * max|cpu logit| per step, with tol = 0.05
// for bf16 activations (8-bit mantissa: each op's output carries a relative rounding of 2^-9,
// compounded over 2 layers, the final norm and the lm_head GEMM), 0.03 for fp16 (11-bit
// mantissa), and 0.08 for dense int8 W8A8 on a plain checkpoint (its CPU reference is the fp32
// dense model: the GPU quantizes weights and activations that the reference keeps in fp32).
// W8A8 n:m checkpoints are compared with the CPU's identical W8A8 arithmetic, whose activation
// codes come from fp32 instead of bf16 inputs (a code can move by one), so they keep 0.05. Greedy:
// the GPU argmax must equal the CPU argmax whenever the CPU top-2 gap exceeds twice the bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "backend_ops/gpu_test_util.h"
#include "slidesparse/checkpoint.h"
#include "slidesparse/cuda_model.h"
#include "slidesparse/model.h"
#include "slidesparse/synth.h"

namespace slidesparse {
namespace {

namespace fs = std::filesystem;

std::string tmp_root() {
  std::error_code ec;
  fs::path p = fs::path(SS_TEST_TMP) / "cuda_model";
  fs::create_directories(p, ec);
  if (ec) {  // the build tree is not there (binary carried to another machine)
    p = fs::temp_directory_path() / "ss_cuda_model_test";
    fs::create_directories(p, ec);
  }
  return p.string();
}

// HF synth checkpoint of `arch`, converted to `pattern`/`q` unless pattern is "hf". Cached per
// process.
std::string checkpoint(const std::string& arch, const std::string& pattern, QuantMode q) {
  static std::mutex mu;
  static std::map<std::string, std::string> done;
  std::lock_guard<std::mutex> lock(mu);
  const std::string hf = tmp_root() + "/" + arch + "_hf";
  if (!done.count(hf)) {
    SynthOptions so;
    so.arch = arch;
    so.out = hf;
    so.seed = 7;
    so.force = true;
    Status s = synth_checkpoint(so);
    EXPECT_TRUE(s.ok()) << s.to_string();
    done[hf] = hf;
  }
  if (pattern == "hf") return hf;
  std::string tag = pattern;
  std::replace(tag.begin(), tag.end(), ':', '_');
  const std::string out = tmp_root() + "/" + arch + "_" + tag + "_" + quant_mode_name(q);
  if (!done.count(out)) {
    auto src = open_hf_source(hf);
    EXPECT_TRUE(src.ok()) << src.status().to_string();
    ConvertOptions co;
    co.out = out;
    co.pattern = *Pattern::parse(pattern);
    co.quant = q;
    co.force = true;
    Status s = convert_checkpoint(**src, co);
    EXPECT_TRUE(s.ok()) << s.to_string();
    done[out] = out;
  }
  return out;
}

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  return v;
}

int32_t argmax(const float* x, int64_t n) {
  int32_t b = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[b]) b = static_cast<int32_t>(i);
  return b;
}

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

float max_diff(const float* a, const float* b, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    m = std::max(m, std::fabs(a[i] - b[i]));
  }
  return m;
}

float top2_gap(const std::vector<float>& v) {
  float a = -INFINITY, b = -INFINITY;
  for (float x : v) {
    if (x > a) {
      b = a;
      a = x;
    } else if (x > b) {
      b = x;
    }
  }
  return a - b;
}

struct ParityCase {
  std::string arch;
  std::string pattern;  // "hf" (plain checkpoint) or an n:m pattern (converted checkpoint)
  QuantMode quant = QuantMode::kNone;
  LinearMode mode = LinearMode::kSparse;
  DType act = DType::kBF16;
  bool prune_at_load = false;  // "hf" + sparsify to pattern_at_load
  std::string pattern_at_load;
  float tol = 0.05f;
};

std::string case_name(const ParityCase& c) {
  std::string s = c.arch + "_" + c.pattern + "_" + quant_mode_name(c.quant) + "_" +
                  linear_mode_name(c.mode) + "_" + (c.act == DType::kF16 ? "fp16" : "bf16");
  if (c.prune_at_load) s += "_prune" + c.pattern_at_load;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

class CudaModelParity : public ::testing::TestWithParam<ParityCase> {};

TEST_P(CudaModelParity, PrefillAndGreedyDecodeMatchTheCpuEngine) {
  SS_SKIP_WITHOUT_GPU();
  const ParityCase& pc = GetParam();
  const std::string dir =
      checkpoint(pc.arch, pc.pattern, pc.pattern == "hf" ? QuantMode::kNone : pc.quant);
  auto cpu_be = make_cpu_backend();
  SparsifyOptions sp;
  if (pc.prune_at_load) {
    sp.enabled = true;
    sp.pattern = *Pattern::parse(pc.pattern_at_load);
    sp.quant = pc.quant;
  }
  auto cpu = Model::load(dir, cpu_be.get(), sp);
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  CudaModelOptions o;
  o.act_dtype = pc.act;
  o.mode = pc.mode;
  o.max_batch = 2;
  o.max_ctx = 32;
  if (pc.pattern == "hf" && !pc.prune_at_load) o.dense_quant = pc.quant;
  o.sparsify = sp;
  auto gpu = CudaModel::load(dir, o);
  ASSERT_TRUE(gpu.ok()) << gpu.status().to_string();
  const int64_t V = (*cpu)->config().vocab_size, L = 11;
  const std::vector<int32_t> prompt = random_ids(L, V, 101);
  std::vector<float> cl(static_cast<size_t>(L * V)), gl(static_cast<size_t>(V));
  ASSERT_TRUE((*cpu)->forward(prompt.data(), L, cl.data()).ok());
  std::vector<float> c_last(cl.end() - V, cl.end());
  int32_t first = -1;
  SS_ASSERT_OK((*gpu)->prefill(prompt.data(), 1, L, gl.data(), &first));
  EXPECT_EQ(first, argmax(gl.data(), V)) << "prefill: device argmax != argmax of the logits";
  float worst = 0;
  for (int step = 0; step <= 4; ++step) {
    const float scale = max_abs(c_last), err = max_diff(gl.data(), c_last.data(), V);
    worst = std::max(worst, err / scale);
    EXPECT_LE(err, pc.tol * scale)
        << "step " << step << ": max|gpu-cpu| " << err << " vs max|logit| " << scale;
    const int32_t want = argmax(c_last.data(), V);
    if (top2_gap(c_last) > 2 * pc.tol * scale)
      EXPECT_EQ(argmax(gl.data(), V), want) << "step " << step;
    if (step == 4) break;
    // Teacher forcing: both engines continue with the CPU's greedy token.
    int32_t next = -1;
    ASSERT_TRUE((*cpu)->forward(&want, 1, c_last.data()).ok());
    SS_ASSERT_OK((*gpu)->decode(&want, 1, gl.data(), &next));
    EXPECT_EQ(next, argmax(gl.data(), V)) << "device argmax != argmax of the returned logits";
  }
  EXPECT_EQ((*gpu)->cache_len(0), L + 4);
  std::printf("[parity] %-44s %s: max|gpu-cpu|/max|logit| = %.4f (tol %.2f)\n",
              case_name(pc).c_str(), (*gpu)->description().c_str(), worst, pc.tol);
}

std::vector<ParityCase> parity_cases() {
  std::vector<ParityCase> v;
  for (const char* arch : {"tiny-llama", "tiny-qwen2"}) {
    v.push_back({arch, "hf", QuantMode::kNone, LinearMode::kDense, DType::kBF16});
    v.push_back({arch, "hf", QuantMode::kNone, LinearMode::kDense, DType::kF16, false, "", 0.03f});
    v.push_back({arch, "hf", QuantMode::kInt8, LinearMode::kDense, DType::kBF16, false, "", 0.08f});
    for (const char* p : {"2:4", "6:8", "8:10"})
      for (QuantMode q : {QuantMode::kNone, QuantMode::kInt8, QuantMode::kFp8})
        for (LinearMode m : {LinearMode::kSparse, LinearMode::kDense})
          v.push_back({arch, p, q, m, DType::kBF16});
    v.push_back(
        {arch, "6:8", QuantMode::kNone, LinearMode::kSparse, DType::kF16, false, "", 0.03f});
    v.push_back(
        {arch, "6:8", QuantMode::kInt8, LinearMode::kSparse, DType::kF16, false, "", 0.03f});
    v.push_back({arch, "hf", QuantMode::kInt8, LinearMode::kSparse, DType::kBF16, true, "6:8"});
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(All, CudaModelParity, ::testing::ValuesIn(parity_cases()),
                         [](const auto& info) { return case_name(info.param); });

std::unique_ptr<CudaModel> load_or_die(const std::string& dir, CudaModelOptions o) {
  auto m = CudaModel::load(dir, o);
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  return m.ok() ? std::move(*m) : nullptr;
}

// S = 3 different prompts in one prefill, then 3 batched decode steps, against S = 1 runs.
// The per-row arithmetic is the same; only GEMM algorithms may differ with M: tolerance 1e-2 of
// max|logit| (measured differences are printed).
TEST(CudaModel, BatchedPrefillAndDecodeEqualSingleSequenceRuns) {
  SS_SKIP_WITHOUT_GPU();
  for (const auto& [arch, pattern, q] :
       std::vector<std::tuple<std::string, std::string, QuantMode>>{
           {"tiny-qwen2", "6:8", QuantMode::kInt8},
           {"tiny-llama", "hf", QuantMode::kNone},
           {"tiny-llama", "8:10", QuantMode::kNone}}) {
    const std::string dir = checkpoint(arch, pattern, q);
    CudaModelOptions o;
    o.max_batch = 3;
    o.max_ctx = 24;
    auto batched = load_or_die(dir, o);
    auto single = load_or_die(dir, o);
    ASSERT_TRUE(batched && single);
    const int64_t V = batched->config().vocab_size, S = 3, L = 9;
    const std::vector<int32_t> prompts = random_ids(S * L, V, 55);
    std::vector<float> bl(static_cast<size_t>(S * V)), sl(static_cast<size_t>(V));
    SS_ASSERT_OK(batched->prefill(prompts.data(), S, L, bl.data()));
    float worst = 0;
    std::vector<std::vector<float>> single_steps(S);
    std::vector<int32_t> toks = random_ids(3 * S, V, 77);  // decode inputs [step][s]
    for (int64_t s = 0; s < S; ++s) {
      SS_ASSERT_OK(single->prefill(prompts.data() + s * L, 1, L, sl.data()));
      const float err = max_diff(sl.data(), bl.data() + s * V, V), scale = max_abs(sl);
      EXPECT_LE(err, 1e-2f * scale) << arch << " " << pattern << " prefill sequence " << s;
      worst = std::max(worst, err / scale);
      for (int step = 0; step < 3; ++step) {
        SS_ASSERT_OK(
            single->decode(&toks[static_cast<size_t>(step * S + s)], 1, sl.data(), nullptr));
        single_steps[static_cast<size_t>(s)].insert(single_steps[static_cast<size_t>(s)].end(),
                                                    sl.begin(), sl.end());
      }
    }
    for (int step = 0; step < 3; ++step) {
      std::vector<int32_t> next(S, -1);
      SS_ASSERT_OK(
          batched->decode(&toks[static_cast<size_t>(step * S)], S, bl.data(), next.data()));
      for (int64_t s = 0; s < S; ++s) {
        const float* want = single_steps[static_cast<size_t>(s)].data() + step * V;
        const std::vector<float> w(want, want + V);
        const float err = max_diff(bl.data() + s * V, want, V), scale = max_abs(w);
        EXPECT_LE(err, 1e-2f * scale)
            << arch << " " << pattern << " decode step " << step << " sequence " << s;
        worst = std::max(worst, err / scale);
        EXPECT_EQ(next[static_cast<size_t>(s)], argmax(bl.data() + s * V, V));
      }
    }
    for (int64_t s = 0; s < S; ++s) EXPECT_EQ(batched->cache_len(s), L + 3);
    std::printf("[batched] %s %s %s: max|batched-single|/max|logit| = %.2e\n", arch.c_str(),
                pattern.c_str(), quant_mode_name(q), worst);
  }
}

// The default GEMM backend kBest runs CUTLASS (fused epilogue) for steps of >= kCutlassMinM tokens
// and the libraries below: a 600-token prefill (S = 2 x 300) and batched decode steps of a W8A8
// model give the same int8 logits bits as a model built on the libraries only, and fp8 logits
// within 1e-2 of max|logit| (CUTLASS's fp8 accumulation differs).
TEST(CudaModel, BestGemmBackendEqualsLibraryOnLongPrefills) {
  SS_SKIP_WITHOUT_GPU();
  auto eff = effective_gemm_backend(GemmBackend::kBest, true, QuantMode::kInt8, DType::kBF16);
  if (!eff.ok() || *eff != GemmBackend::kBest)
    GTEST_SKIP() << "kBest is the library here (no CUTLASS build or not sm_90)";
  for (const auto& [arch, pattern, q] :
       std::vector<std::tuple<std::string, std::string, QuantMode>>{
           {"tiny-qwen2", "6:8", QuantMode::kInt8},
           {"tiny-llama", "2:4", QuantMode::kInt8},
           {"tiny-qwen2", "hf", QuantMode::kInt8},
           {"tiny-llama", "6:8", QuantMode::kFp8}}) {
    SCOPED_TRACE(arch + " " + pattern + " " + quant_mode_name(q));
    const std::string dir = checkpoint(arch, pattern, pattern == "hf" ? QuantMode::kNone : q);
    CudaModelOptions o;
    o.max_batch = 2;
    o.max_ctx = 304;
    if (pattern == "hf") o.dense_quant = q;
    auto best = load_or_die(dir, o);
    o.gemm_backend = GemmBackend::kLibrary;
    auto lib = load_or_die(dir, o);
    ASSERT_TRUE(best && lib);
    EXPECT_NE(best->description().find("GEMM best"), std::string::npos) << best->description();
    EXPECT_NE(lib->description().find("GEMM library"), std::string::npos) << lib->description();
    const int64_t V = best->config().vocab_size, S = 2, L = 300;
    const std::vector<int32_t> prompts = random_ids(S * L, V, 31);
    std::vector<float> bl(static_cast<size_t>(S * V)), ll(bl.size());
    SS_ASSERT_OK(best->prefill(prompts.data(), S, L, bl.data()));
    SS_ASSERT_OK(lib->prefill(prompts.data(), S, L, ll.data()));
    const std::vector<int32_t> toks = random_ids(S, V, 32);
    std::vector<float> bd(bl.size()), ld(bl.size());
    SS_ASSERT_OK(best->decode(toks.data(), S, bd.data(), nullptr));
    SS_ASSERT_OK(lib->decode(toks.data(), S, ld.data(), nullptr));
    if (q == QuantMode::kInt8) {
      EXPECT_EQ(bl, ll) << "prefill";
      EXPECT_EQ(bd, ld) << "decode";
    } else {
      EXPECT_LE(max_diff(bl.data(), ll.data(), S * V), 1e-2f * max_abs(ll)) << "prefill";
      EXPECT_LE(max_diff(bd.data(), ld.data(), S * V), 1e-2f * max_abs(ld)) << "decode";
    }
    std::printf("[best] %s: max|best-library| prefill %.2e decode %.2e\n",
                best->description().c_str(), max_diff(bl.data(), ll.data(), S * V),
                max_diff(bd.data(), ld.data(), S * V));
  }
}

// prefill_all_logits (one prefill, every position's logits; the final norm and lm_head in chunks
// of max_batch rows, the last one partial) equals prefilling each prefix separately.
TEST(CudaModel, PrefillAllLogitsEqualsPrefixPrefills) {
  SS_SKIP_WITHOUT_GPU();
  for (const auto& [arch, pattern, q] :
       std::vector<std::tuple<std::string, std::string, QuantMode>>{
           {"tiny-qwen2", "6:8", QuantMode::kInt8}, {"tiny-llama", "hf", QuantMode::kNone}}) {
    CudaModelOptions o;
    o.max_batch = 3;
    o.max_ctx = 24;
    auto m = load_or_die(checkpoint(arch, pattern, q), o);
    ASSERT_TRUE(m);
    const int64_t V = m->config().vocab_size, L = 20;
    const std::vector<int32_t> ids = random_ids(L, V, 91);
    std::vector<float> all(static_cast<size_t>(L * V), NAN), one(static_cast<size_t>(V));
    SS_ASSERT_OK(m->prefill_all_logits(ids.data(), L, all.data()));
    EXPECT_EQ(m->cache_len(0), L);
    float worst = 0;
    for (int64_t i = 0; i < L; ++i) {
      SS_ASSERT_OK(m->prefill(ids.data(), 1, i + 1, one.data()));
      const float err = max_diff(all.data() + i * V, one.data(), V), scale = max_abs(one);
      EXPECT_LE(err, 1e-2f * scale) << arch << " " << pattern << " row " << i;
      worst = std::max(worst, err / scale);
    }
    std::vector<float> first(static_cast<size_t>(V));
    SS_ASSERT_OK(m->prefill_all_logits(ids.data(), 1, first.data()));
    SS_ASSERT_OK(m->prefill(ids.data(), 1, 1, one.data()));
    EXPECT_EQ(max_diff(first.data(), one.data(), V), 0.0f);
    EXPECT_EQ(m->prefill_all_logits(ids.data(), 25, all.data()).code(),
              StatusCode::kInvalidArgument);  // L > max_ctx
    std::printf("[all logits] %s %s %s: max|all-prefix|/max|logit| = %.2e\n", arch.c_str(),
                pattern.c_str(), quant_mode_name(q), worst);
  }
}

// Decode replayed from CUDA graphs (device pos/kv_len arrays change between replays) gives the
// same logits, bit for bit, as eager decode; also across a prefill between decodes and B = 1, 2.
TEST(CudaModel, GraphDecodeEqualsEagerDecodeBitExact) {
  SS_SKIP_WITHOUT_GPU();
  for (const auto& [pattern, q] : std::vector<std::pair<std::string, QuantMode>>{
           {"6:8", QuantMode::kFp8}, {"hf", QuantMode::kNone}, {"2:4", QuantMode::kNone}}) {
    const std::string dir = checkpoint("tiny-qwen2", pattern, q);
    CudaModelOptions o;
    o.max_batch = 2;
    o.max_ctx = 40;
    o.cuda_graphs = true;
    auto graphed = load_or_die(dir, o);
    o.cuda_graphs = false;
    auto eager = load_or_die(dir, o);
    ASSERT_TRUE(graphed && eager);
    const int64_t V = graphed->config().vocab_size;
    const std::vector<int32_t> prompt = random_ids(2 * 5, V, 9);
    std::vector<float> a(static_cast<size_t>(2 * V)), b(a.size());
    for (CudaModel* m : {graphed.get(), eager.get()})
      SS_ASSERT_OK(m->prefill(prompt.data(), 2, 5, nullptr));
    int64_t mismatches = 0;
    for (int step = 0; step < 12; ++step) {
      const int64_t B = step < 6 ? 2 : 1;
      if (step == 8) {  // a new prefill shape between decodes
        for (CudaModel* m : {graphed.get(), eager.get()})
          SS_ASSERT_OK(m->prefill(prompt.data(), 1, 7, nullptr));
      }
      const std::vector<int32_t> t = random_ids(B, V, 1000 + step);
      SS_ASSERT_OK(graphed->decode(t.data(), B, a.data(), nullptr));
      SS_ASSERT_OK(eager->decode(t.data(), B, b.data(), nullptr));
      for (int64_t i = 0; i < B * V; ++i)
        mismatches += a[static_cast<size_t>(i)] != b[static_cast<size_t>(i)];
    }
    EXPECT_EQ(mismatches, 0) << pattern;
    EXPECT_EQ(graphed->cache_len(0), eager->cache_len(0));
  }
}

// mode auto: without tuning data every layer is dense (== mode dense, bit for bit); with a tuning
// JSON saying the sparse GEMM is faster for every fused shape and bucket, every layer is sparse
// (== mode sparse, bit for bit: the same kernels and library-default algorithms).
TEST(CudaModel, AutoModeFollowsTheTuningTable) {
  SS_SKIP_WITHOUT_GPU();
  const std::string dir = checkpoint("tiny-qwen2", "6:8", QuantMode::kNone);
  auto ck = Checkpoint::open(dir);
  ASSERT_TRUE(ck.ok());
  const ModelConfig& c = ck->config();
  const int64_t C = c.hidden_size, hd = c.head_dim, F = c.intermediate_size;
  TuningTable tt;
  for (const auto& [N, K] : std::vector<std::pair<int64_t, int64_t>>{
           {(c.num_heads + 2 * c.num_kv_heads) * hd, C}, {C, c.num_heads * hd}, {2 * F, C}, {C, F}})
    for (int64_t b = 1; b <= 64; b *= 2) {
      TuneEntry s{"cusparselt", "bf16", "6:8", N, K, b};
      s.us = 1.0;
      TuneEntry d{"cublaslt", "bf16", "dense", N, K, b};
      d.us = 2.0;
      tt.put(s);
      tt.put(d);
    }
  const std::string tuning = tmp_root() + "/tuning_all_sparse.json";
  SS_ASSERT_OK(tt.save(tuning));
  auto load = [&](LinearMode mode, const std::string& tuning_path) {
    CudaModelOptions o;
    o.max_batch = 2;
    o.max_ctx = 24;
    o.mode = mode;
    o.tuning_path = tuning_path;
    return load_or_die(dir, o);
  };
  auto run = [&](LinearMode mode, const std::string& tuning_path) {
    auto m = load(mode, tuning_path);
    std::vector<float> out;
    if (!m) return out;
    const int64_t V = m->config().vocab_size;
    const std::vector<int32_t> ids = random_ids(2 * 9, V, 8);
    std::vector<float> l(static_cast<size_t>(2 * V));
    EXPECT_TRUE(m->prefill(ids.data(), 2, 9, l.data()).ok());
    out.insert(out.end(), l.begin(), l.end());
    for (int step = 0; step < 3; ++step) {
      EXPECT_TRUE(m->decode(ids.data() + 2 * step, 2, l.data(), nullptr).ok());
      out.insert(out.end(), l.begin(), l.end());
    }
    return out;
  };
  const std::vector<float> sparse = run(LinearMode::kSparse, ""),
                           dense = run(LinearMode::kDense, "");
  ASSERT_FALSE(sparse.empty());
  EXPECT_EQ(run(LinearMode::kAuto, ""), dense);
  EXPECT_EQ(run(LinearMode::kAuto, tuning), sparse);
  // tuning_note(): the sparse GEMMs without an entry (4 fused shapes at M = 1 and at the prefill
  // size 48); none when the table covers them, the model is dense, or auto chose dense layers.
  auto note = [&](LinearMode mode, const std::string& tuning_path) {
    auto m = load(mode, tuning_path);
    return m ? m->tuning_note() : std::string("load failed");
  };
  const std::string untuned = note(LinearMode::kSparse, "");
  EXPECT_NE(untuned.find("8 of 8 sparse GEMM shapes have no tuning entry (bf16 6:8 cusparselt at "
                         "M=1, bf16 6:8 cusparselt at M=48)"),
            std::string::npos)
      << untuned;
  EXPECT_EQ(untuned.find('\n'), std::string::npos);
  EXPECT_EQ(note(LinearMode::kSparse, tuning), "");
  EXPECT_EQ(note(LinearMode::kDense, ""), "");
  EXPECT_EQ(note(LinearMode::kAuto, ""), "");
  EXPECT_EQ(note(LinearMode::kAuto, tuning), "");
  CudaModelOptions bad;
  bad.tuning_path = tmp_root() + "/no_such_tuning.json";
  auto m = CudaModel::load(dir, bad);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("no_such_tuning.json"), std::string::npos);
}

TEST(CudaModel, ProfileListsEveryOp) {
  SS_SKIP_WITHOUT_GPU();
  CudaModelOptions o;
  o.max_batch = 2;
  o.max_ctx = 16;
  o.profile = true;
  auto m = load_or_die(checkpoint("tiny-llama", "6:8", QuantMode::kInt8), o);
  ASSERT_TRUE(m);
  const std::vector<int32_t> ids = random_ids(8, m->config().vocab_size, 3);
  SS_ASSERT_OK(m->prefill(ids.data(), 2, 4, nullptr));
  int32_t next[2];
  SS_ASSERT_OK(m->decode(ids.data(), 2, nullptr, next));
  std::map<std::string, OpTime> ops;
  for (const OpTime& t : m->profile()) ops[t.op] = t;
  for (const char* op : {"embedding", "rmsnorm", "qkv", "rope_kv", "attention", "o", "gate_up",
                         "silu_mul", "down", "lm_head"}) {
    ASSERT_TRUE(ops.count(op)) << op;
    EXPECT_GT(ops[op].ms, 0.0) << op;
  }
  EXPECT_EQ(ops["qkv"].calls, 2 * m->config().num_layers);
  EXPECT_EQ(ops["rmsnorm"].calls, 2 * (2 * m->config().num_layers + 1));
  m->reset_profile();
  EXPECT_TRUE(m->profile().empty());
  EXPECT_GT(m->weight_bytes(), 0u);
  EXPECT_GT(m->peak_memory_bytes(), m->weight_bytes());
}

// Synthetic weights: the shapes of the arch, deterministic in the seed, finite logits.
TEST(CudaModel, SyntheticModelsRunAndAreDeterministic) {
  SS_SKIP_WITHOUT_GPU();
  CudaModelOptions o;
  o.max_batch = 2;
  o.max_ctx = 16;
  for (const char* pattern : {"dense", "6:8", "2:4", "8:10"}) {
    SyntheticModelSpec spec;
    spec.arch = "tiny-qwen2";
    spec.pattern = pattern;
    spec.quant = QuantMode::kInt8;
    spec.seed = 5;
    spec.repeat_layers = pattern[0] != '8';  // both ways of drawing the layers
    auto a = CudaModel::synthetic(spec, o);
    auto b = CudaModel::synthetic(spec, o);
    ASSERT_TRUE(a.ok() && b.ok()) << (a.ok() ? b.status() : a.status()).to_string();
    EXPECT_NE((*a)->description().find("synthetic tiny-qwen2"), std::string::npos);
    const int64_t V = (*a)->config().vocab_size;
    const std::vector<int32_t> ids = random_ids(6, V, 4);
    std::vector<float> la(static_cast<size_t>(V)), lb(la.size());
    SS_ASSERT_OK((*a)->prefill(ids.data(), 1, 6, la.data()));
    SS_ASSERT_OK((*b)->prefill(ids.data(), 1, 6, lb.data()));
    EXPECT_EQ(la, lb) << pattern;
    EXPECT_GT(max_abs(la), 0.0f);
    for (float x : la) ASSERT_TRUE(std::isfinite(x));
  }
}

// Rows 0..rows-1 of the [rows, V] logits of two variants of one model (a = the reference): per row
// max|b - a| <= tol * max|a|, and the same greedy token where a's top two are more than
// gap * max|a| apart; stops after the first row whose tokens differ (later rows decode other
// inputs). Returns the worst max|b - a| / max|a|.
float compare_logit_rows(const std::vector<float>& a, const std::vector<float>& b,
                         const std::vector<int32_t>& ta, const std::vector<int32_t>& tb, int rows,
                         int64_t V, float tol, float gap, const char* label) {
  float worst = 0;
  for (int r = 0; r < rows; ++r) {
    const std::vector<float> ref(a.begin() + r * V, a.begin() + (r + 1) * V);
    const float scale = max_abs(ref), err = max_diff(b.data() + r * V, ref.data(), V);
    worst = std::max(worst, err / scale);
    EXPECT_LE(err, tol * scale) << label << " " << r;
    if (top2_gap(ref) > gap * scale) EXPECT_EQ(tb[r], ta[r]) << label << " " << r;
    if (tb[r] != ta[r]) break;
  }
  return worst;
}

// The engine with the wgmma prefill attention (auto on sm_90 from 1024 attended keys; and its
// overlapped schedule, forced) against the same model forced onto the mma.sync kernel: a synthetic
// Llama3.2-1B (hd 64, 16 layers, bf16) prefilling one 1100-token prompt and decoding 2 tokens. Both
// kernels approximate exact attention within the same bound (attention_test), so the logits agree
// within the GPU-vs-CPU parity tolerance (5 % of the largest logit), and the greedy tokens where
// the top two are apart.
TEST(CudaModel, WgmmaPrefillAttentionMatchesMmaEndToEnd) {
  SS_SKIP_WITHOUT_GPU();
  int sm = 0;
  SS_ASSERT_OK(cuda::check_device(&sm));
  if (sm != 90) GTEST_SKIP() << "the wgmma kernel runs on sm_90 only (device sm_" << sm << ")";
  SyntheticModelSpec spec;
  spec.arch = "llama3.2-1b";
  spec.pattern = "dense";
  spec.quant = QuantMode::kNone;
  spec.seed = 11;
  CudaModelOptions o;
  o.max_batch = 1;
  o.max_ctx = 1104;
  const int64_t L = 1100;
  std::vector<std::vector<float>> logits;  // [kernel][step * V + v]
  std::vector<std::vector<int32_t>> tokens;
  // auto: the wgmma kernel's serial schedule at 1100 keys; wgmma_overlap forces the other one.
  for (const char* kernel : {"mma128", "auto", "wgmma_overlap"}) {
    ::setenv("SLIDESPARSE_PREFILL_ATTENTION", kernel, 1);
    auto m = CudaModel::synthetic(spec, o);
    ::unsetenv("SLIDESPARSE_PREFILL_ATTENTION");
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    const int64_t V = (*m)->config().vocab_size;
    const std::vector<int32_t> ids = random_ids(L, V, 12);
    std::vector<float> lg(static_cast<size_t>(3 * V));
    std::vector<int32_t> tk(3);
    SS_ASSERT_OK((*m)->prefill(ids.data(), 1, L, lg.data(), &tk[0]));
    for (int i = 1; i < 3; ++i)
      SS_ASSERT_OK((*m)->decode(&tk[i - 1], 1, lg.data() + i * V, &tk[i]));
    logits.push_back(std::move(lg));
    tokens.push_back(tk);
  }
  const int64_t V = static_cast<int64_t>(logits[0].size() / 3);
  const float worst =
      compare_logit_rows(logits[0], logits[1], tokens[0], tokens[1], 3, V, 0.05f, 0.1f, "step");
  const float worst_ovl =
      compare_logit_rows(logits[0], logits[2], tokens[0], tokens[2], 3, V, 0.05f, 0.1f, "step");
  std::printf(
      "[wgmma] llama3.2-1b bf16, 1100-token prompt: max|wgmma-mma|/max|logit| = %.4f, "
      "wgmma_overlap %.4f\n",
      worst, worst_ovl);
  // The two wgmma schedules compute the same bytes (attention_test
  // PrefillWgmmaSchedulesBitIdentical).
  EXPECT_EQ(logits[1], logits[2]);
}

// One engine run with an environment switch set at load: a batched prefill of 2 x 11 tokens (ids
// from `seed`) and 3 batched decode steps; logits [(step * 2 + seq) * V + v], greedy tokens.
struct SwitchRun {
  bool ok = false;
  int64_t V = 0;
  std::vector<float> logits;
  std::vector<int32_t> tokens;
};
SwitchRun run_with_env(const std::string& dir, const CudaModelOptions& o, const char* var,
                       const char* value, uint64_t seed) {
  SwitchRun r;
  ::setenv(var, value, 1);
  auto m = load_or_die(dir, o);
  ::unsetenv(var);
  if (!m) return r;
  r.V = m->config().vocab_size;
  const std::vector<int32_t> ids = random_ids(2 * 11, r.V, seed);
  r.logits.resize(static_cast<size_t>(4 * 2 * r.V));
  r.tokens.resize(4 * 2);
  Status st = m->prefill(ids.data(), 2, 11, r.logits.data(), r.tokens.data());
  for (int i = 1; i < 4 && st.ok(); ++i)
    st = m->decode(&r.tokens[(i - 1) * 2], 2, r.logits.data() + i * 2 * r.V, &r.tokens[i * 2]);
  EXPECT_TRUE(st.ok()) << var << "=" << value << ": " << st.to_string();
  r.ok = st.ok();
  return r;
}

// The default fast SwiGLU (SiluMath::kFast: within 1-2 ulps of T per element, engine_kernels_test)
// against SLIDESPARSE_SWIGLU=exact (bit-identical to the CPU reference's SiLU) on the same model:
// W8A8 6:8 (the fused SwiGLU prologue) and bf16 dense (the plain SwiGLU kernel), a batched
// prefill of 2 x 11 tokens and 3 batched decode steps. The logits agree within 2 % of the largest
// (measured differences are printed), the greedy tokens where the top two are apart.
TEST(CudaModel, FastSwigluMatchesExactEndToEnd) {
  SS_SKIP_WITHOUT_GPU();
  struct Case {
    const char* arch;
    const char* pattern;
    QuantMode q;
  };
  for (const Case& c :
       {Case{"tiny-qwen2", "6:8", QuantMode::kInt8}, Case{"tiny-qwen2", "2:4", QuantMode::kFp8},
        Case{"tiny-llama", "hf", QuantMode::kNone}}) {
    SCOPED_TRACE(std::string(c.arch) + " " + c.pattern + " " + quant_mode_name(c.q));
    const std::string dir = checkpoint(c.arch, c.pattern, c.q);
    CudaModelOptions o;
    o.max_batch = 2;
    o.max_ctx = 32;
    const SwitchRun exact = run_with_env(dir, o, "SLIDESPARSE_SWIGLU", "exact", 31);
    const SwitchRun fast = run_with_env(dir, o, "SLIDESPARSE_SWIGLU", "fast", 31);
    ASSERT_TRUE(exact.ok && fast.ok);
    const float worst = compare_logit_rows(exact.logits, fast.logits, exact.tokens, fast.tokens,
                                           2 * 4, exact.V, 0.02f, 0.04f, "(step, sequence) row");
    std::printf("[swiglu] %s %s %s: max|fast-exact|/max|logit| = %.5f\n", c.arch, c.pattern,
                quant_mode_name(c.q), worst);
  }
}

// SLIDESPARSE_NORM=auto (the W8A8 norms on the register-row kernel, add_rmsnorm_prologue.cuh)
// against the default CTA-per-row kernel: the same slot bytes by construction, so identical logits
// and tokens for a batched prefill (2 x 11 tokens) and 3 decode steps -- int8 6:8 and fp8 2:4
// sparse, and int8 dense (a plain HF checkpoint quantized at load).
TEST(CudaModel, NormRegsKernelMatchesCtaKernel) {
  SS_SKIP_WITHOUT_GPU();
  struct Case {
    const char* pattern;
    QuantMode q;
    QuantMode dense_quant;
  };
  for (const Case& c : {Case{"6:8", QuantMode::kInt8, QuantMode::kNone},
                        Case{"2:4", QuantMode::kFp8, QuantMode::kNone},
                        Case{"hf", QuantMode::kNone, QuantMode::kInt8}}) {
    SCOPED_TRACE(std::string(c.pattern) + " " + quant_mode_name(c.q) + " dense_quant " +
                 quant_mode_name(c.dense_quant));
    const std::string dir = checkpoint("tiny-qwen2", c.pattern, c.q);
    CudaModelOptions o;
    o.max_batch = 2;
    o.max_ctx = 32;
    o.dense_quant = c.dense_quant;
    const SwitchRun cta = run_with_env(dir, o, "SLIDESPARSE_NORM", "cta", 43);
    const SwitchRun regs = run_with_env(dir, o, "SLIDESPARSE_NORM", "auto", 43);
    ASSERT_TRUE(cta.ok && regs.ok);
    EXPECT_EQ(cta.tokens, regs.tokens);
    size_t differ = 0;
    for (size_t i = 0; i < cta.logits.size(); ++i)
      differ += !(cta.logits[i] == regs.logits[i] ||
                  (std::isnan(cta.logits[i]) && std::isnan(regs.logits[i])));
    EXPECT_EQ(differ, 0u) << "logits differ (of " << cta.logits.size() << ")";
  }
}

TEST(CudaModel, BadInputsAreOneLineErrors) {
  SS_SKIP_WITHOUT_GPU();
  const std::string dir = checkpoint("tiny-llama", "6:8", QuantMode::kNone);
  CudaModelOptions o;
  o.max_batch = 2;
  o.max_ctx = 8;
  auto m = load_or_die(dir, o);
  ASSERT_TRUE(m);
  const int64_t V = m->config().vocab_size;
  std::vector<int32_t> ids = random_ids(32, V, 1);
  auto expect_err = [](const Status& s, const std::string& needle) {
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find('\n'), std::string::npos);
  };
  expect_err(m->prefill(ids.data(), 3, 2, nullptr), "max_batch");
  expect_err(m->prefill(ids.data(), 1, 9, nullptr), "max_ctx");
  expect_err(m->prefill(ids.data(), 0, 2, nullptr), "S=0");
  ids[3] = static_cast<int32_t>(V);
  expect_err(m->prefill(ids.data(), 1, 5, nullptr), "outside the vocabulary");
  ids[3] = -1;
  expect_err(m->decode(ids.data() + 3, 1, nullptr, nullptr), "outside the vocabulary");
  ids[3] = 0;
  expect_err(m->decode(ids.data(), 3, nullptr, nullptr), "max_batch");
  SS_ASSERT_OK(m->prefill(ids.data(), 1, 8, nullptr));
  expect_err(m->decode(ids.data(), 1, nullptr, nullptr), "slot 0 is full");
  // The failed calls left the model usable.
  SS_ASSERT_OK(m->prefill(ids.data(), 2, 3, nullptr));
  SS_ASSERT_OK(m->decode(ids.data(), 2, nullptr, nullptr));
  EXPECT_EQ(m->cache_len(1), 4);

  CudaModelOptions big = o;
  big.max_ctx = 100000;
  expect_err(CudaModel::load(dir, big).status(), "max_position_embeddings");
  expect_err(CudaModel::load(dir + "_missing", o).status(), "_missing");
  CudaModelOptions prune = o;
  prune.sparsify.enabled = true;
  expect_err(CudaModel::load(dir, prune).status(), "already a SlideSparse checkpoint");
  ::setenv("SLIDESPARSE_PREFILL_ATTENTION", "flash3", 1);  // not a kernel name
  expect_err(CudaModel::load(dir, o).status(), "SLIDESPARSE_PREFILL_ATTENTION: prefill attention");
  ::unsetenv("SLIDESPARSE_PREFILL_ATTENTION");
  ::setenv("SLIDESPARSE_SWIGLU", "approx", 1);  // not fast or exact
  expect_err(CudaModel::load(dir, o).status(), "SLIDESPARSE_SWIGLU: SwiGLU math 'approx'");
  ::unsetenv("SLIDESPARSE_SWIGLU");
  for (const char* v : {"regs", "block"}) {  // regs: a kernel the engine does not take alone
    ::setenv("SLIDESPARSE_NORM", v, 1);
    expect_err(CudaModel::load(dir, o).status(), "SLIDESPARSE_NORM: norm kernel");
    ::unsetenv("SLIDESPARSE_NORM");
  }
  SyntheticModelSpec spec;
  spec.arch = "gpt2";
  expect_err(CudaModel::synthetic(spec, o).status(), "gpt2");
  // Far more KV cache than any GPU has: refused before allocating, naming the numbers.
  spec.arch = "qwen2.5-14b";
  spec.pattern = "6:8";
  CudaModelOptions huge;
  huge.max_batch = 4096;
  huge.max_ctx = 32768;
  huge.max_step_tokens = 4096;
  auto h = CudaModel::synthetic(spec, huge);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), StatusCode::kOutOfMemory);
  EXPECT_NE(h.status().message().find("KV cache"), std::string::npos) << h.status().message();
  EXPECT_NE(h.status().message().find("free"), std::string::npos);
  std::printf("[errors] %s\n", h.status().message().c_str());
}

}  // namespace
}  // namespace slidesparse

namespace slidesparse {
namespace {

// Load time of the largest synthetic model (the bench's Qwen2.5-14B, 6:8 int8) and a rough
// prefill/decode timing; run with --gtest_also_run_disabled_tests (needs a large GPU).
TEST(CudaModel, DISABLED_SyntheticQwen14BLoadTime) {
  SS_SKIP_WITHOUT_GPU();
  using Clock = std::chrono::steady_clock;
  SyntheticModelSpec spec;
  spec.arch = "qwen2.5-14b";
  spec.pattern = "6:8";
  spec.quant = QuantMode::kInt8;
  CudaModelOptions o;
  o.max_batch = 1;
  o.max_ctx = 1024 + 64;  // the prompt and the decode steps
  const auto t0 = Clock::now();
  auto m = CudaModel::synthetic(spec, o);
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  const std::vector<int32_t> ids = random_ids(1024, (*m)->config().vocab_size, 2);
  int32_t next = 0;
  SS_ASSERT_OK((*m)->prefill(ids.data(), 1, 1024, nullptr, &next));  // plans, warm-up
  const auto t1 = Clock::now();
  SS_ASSERT_OK((*m)->prefill(ids.data(), 1, 1024, nullptr, &next));
  const double prefill_ms = std::chrono::duration<double, std::milli>(Clock::now() - t1).count();
  for (int i = 0; i < 3; ++i) SS_ASSERT_OK((*m)->decode(&next, 1, nullptr, &next));
  const auto t2 = Clock::now();
  for (int i = 0; i < 32; ++i) SS_ASSERT_OK((*m)->decode(&next, 1, nullptr, &next));
  const double tpot = std::chrono::duration<double, std::milli>(Clock::now() - t2).count() / 32;
  std::printf(
      "[qwen2.5-14b] %s: load %.1f s, weights %.2f GB, peak %.2f GB; prefill L=1024 %.1f "
      "ms (%.0f tokens/s); decode B=1 %.2f ms/token\n",
      (*m)->description().c_str(), load_s, (*m)->weight_bytes() / 1e9,
      (*m)->peak_memory_bytes() / 1e9, prefill_ms, 1024 / prefill_ms * 1e3, tpot);
}

// Per-op profile of a Qwen2.5-7B prefill step (S=16 x L=1024 = 16384 tokens) and a decode step
// (B=16), synthetic 6:8 int8 and dense int8 weights: the GEMM vs non-GEMM split of the engine.
TEST(CudaModel, DISABLED_Qwen7BProfile) {
  SS_SKIP_WITHOUT_GPU();
  for (const char* pattern : {"dense", "6:8"}) {
    SyntheticModelSpec spec;
    spec.arch = "qwen2.5-7b";
    spec.pattern = pattern;
    spec.quant = QuantMode::kInt8;
    CudaModelOptions o;
    o.max_batch = 16;
    o.max_ctx = 1024 + 8;
    o.max_step_tokens = 16384;
    o.profile = true;
    auto m = CudaModel::synthetic(spec, o);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    const std::vector<int32_t> ids = random_ids(16384, (*m)->config().vocab_size, 2);
    std::vector<int32_t> next(16);
    SS_ASSERT_OK((*m)->prefill(ids.data(), 16, 1024, nullptr, next.data()));  // warm-up
    for (const bool prefill : {true, false}) {
      (*m)->reset_profile();
      const int reps = prefill ? 3 : 16;
      for (int r = 0; r < reps; ++r) {
        if (prefill) {
          SS_ASSERT_OK((*m)->prefill(ids.data(), 16, 1024, nullptr, next.data()));
        } else {
          SS_ASSERT_OK((*m)->decode(next.data(), 16, nullptr, next.data()));
        }
      }
      double total = 0, gemm = 0;
      std::string line;
      for (const OpTime& t : (*m)->profile()) {
        total += t.ms;
        if (t.op == "qkv" || t.op == "o" || t.op == "gate_up" || t.op == "down" ||
            t.op == "lm_head")
          gemm += t.ms;
        char b[64];
        std::snprintf(b, sizeof b, " %s %.3f", t.op.c_str(), t.ms / reps);
        line += b;
      }
      std::printf(
          "[qwen2.5-7b %s int8 %s] %.2f ms/step (sum of ops), linears %.1f%%, other "
          "%.1f%%;%s\n",
          pattern, prefill ? "prefill 16x1024" : "decode B=16", total / reps, 100 * gemm / total,
          100 * (total - gemm) / total, line.c_str());
    }
  }
}

}  // namespace
}  // namespace slidesparse
