// Model configs, synth, and the SlideSparse checkpoint round trip: synth tiny -> convert (every
// pattern x quant, magnitude and Wanda) -> load -> equal, exactly, to the pruned, quantized source
// recomputed independently with the core functions (prune_select, quantize_rows, nm_pack).
#include "slidesparse/checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "slidesparse/model_config.h"
#include "slidesparse/synth.h"

namespace ss = slidesparse;
namespace fs = std::filesystem;

namespace {

std::string tmp(const std::string& name) {
  std::string d = std::string(SS_TEST_TMP) + "/checkpoint/" + name;
  fs::remove_all(d);
  fs::create_directories(fs::path(d).parent_path());
  return d;
}

std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The expected compact tensor, computed from the source weight with the core's building blocks
// (not nm_compress, which convert uses).
ss::NmTensor expected_nm(const std::vector<float>& w, int64_t N, int64_t K, ss::Pattern p,
                         ss::PruneMethod pm, const float* norms, ss::QuantMode q) {
  auto masks = ss::prune_select(w.data(), N, K, p, pm, norms);
  EXPECT_TRUE(masks.ok());
  std::vector<float> pruned = w;
  ss::prune_apply(pruned.data(), N, K, p, masks->data());
  std::vector<uint8_t> dense;
  ss::DType t;
  std::vector<float> scales;
  if (q == ss::QuantMode::kNone) {
    t = ss::DType::kBF16;
    dense.resize(static_cast<size_t>(N * K) * 2);
    EXPECT_TRUE(ss::convert_from_f32(t, pruned.data(), dense.data(), N * K).ok());
  } else {
    t = ss::quant_storage_dtype(q);
    dense.resize(static_cast<size_t>(N * K));
    scales.resize(static_cast<size_t>(N));
    ss::quantize_rows(q, pruned.data(), N, K, dense.data(), scales.data());
  }
  auto nm = ss::nm_pack(t, dense.data(), N, K, p, masks->data());
  EXPECT_TRUE(nm.ok()) << nm.status().to_string();
  nm->scales = scales;
  return *nm;
}

}  // namespace

TEST(ModelConfig, SynthArchsRoundTripAndMatchDesignShapes) {
  for (const auto& a : ss::synth_arch_names()) {
    auto c = ss::synth_arch_config(a);
    ASSERT_TRUE(c.ok()) << a;
    auto back = ss::model_config_parse(ss::model_config_to_json(*c));
    ASSERT_TRUE(back.ok()) << a << ": " << back.status().to_string();
    EXPECT_EQ(back->hidden_size, c->hidden_size);
    EXPECT_EQ(back->intermediate_size, c->intermediate_size);
    EXPECT_EQ(back->num_kv_heads, c->num_kv_heads);
    EXPECT_EQ(back->head_dim, c->head_dim);
    EXPECT_EQ(back->tie_word_embeddings, c->tie_word_embeddings);
    EXPECT_EQ(back->qkv_bias, c->qkv_bias);
    EXPECT_EQ(back->rope_scaling.kind, c->rope_scaling.kind);
    EXPECT_EQ(back->rope_theta, c->rope_theta);
  }
  // DESIGN.md: (N, K) of qkv (fused), o, gate+up (fused), down.
  struct Row {
    const char* arch;
    int64_t qkv_n, c, i;
  } rows[] = {{"llama3.2-1b", 3072, 2048, 8192},
              {"llama3.2-3b", 5120, 3072, 8192},
              {"qwen2.5-7b", 4608, 3584, 18944},
              {"qwen2.5-14b", 7168, 5120, 13824}};
  for (const Row& r : rows) {
    auto c = ss::synth_arch_config(r.arch);
    auto lin = ss::model_linears(*c);
    ASSERT_EQ(lin.size(), static_cast<size_t>(7 * c->num_layers));
    EXPECT_EQ(lin[0].N + lin[1].N + lin[2].N, r.qkv_n) << r.arch;
    EXPECT_EQ(lin[0].K, r.c);
    EXPECT_EQ(lin[3].N, r.c);
    EXPECT_EQ(lin[3].K, r.c);
    EXPECT_EQ(lin[4].N + lin[5].N, 2 * r.i);
    EXPECT_EQ(lin[6].N, r.c);
    EXPECT_EQ(lin[6].K, r.i);
    EXPECT_EQ(lin[6].name, "model.layers.0.mlp.down_proj");
  }
  auto q = ss::synth_arch_config("qwen2.5-7b");
  int64_t params = 0;
  for (auto& t : ss::model_tensors(*q)) params += ss::shape_numel(t.shape);
  EXPECT_EQ(params, 7615616512);  // Qwen2.5-7B's published parameter count
}

TEST(ModelConfig, ParsesRealConfigsAndRejectsBadOnes) {
  // SmolLM2-135M (Llama) as published, trimmed.
  auto smol = ss::model_config_parse(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 576,
    "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
    "num_key_value_heads": 3, "vocab_size": 49152, "rope_theta": 100000, "rms_norm_eps": 1e-05,
    "tie_word_embeddings": true, "torch_dtype": "bfloat16", "rope_scaling": null,
    "bos_token_id": 1, "eos_token_id": 2, "max_position_embeddings": 8192})");
  ASSERT_TRUE(smol.ok()) << smol.status().to_string();
  EXPECT_EQ(smol->head_dim, 64);
  EXPECT_EQ(smol->rope_scaling.kind, "none");
  EXPECT_FALSE(smol->qkv_bias);
  EXPECT_EQ(ss::model_tensors(*smol).size(), 1 + 30 * 9 + 1u);  // tied: no lm_head
  auto l32 = ss::model_config_parse(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 2048,
    "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
    "num_key_value_heads": 8, "vocab_size": 128256, "rope_theta": 500000.0, "head_dim": 64,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
    "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "eos_token_id": [128001, 128008, 128009], "torch_dtype": "bfloat16"})");
  ASSERT_TRUE(l32.ok()) << l32.status().to_string();
  EXPECT_EQ(l32->rope_scaling.kind, "llama3");
  EXPECT_EQ(l32->rope_scaling.factor, 32.0);
  EXPECT_EQ(l32->eos_token_ids.size(), 3u);
  auto qw = ss::model_config_parse(R"({"model_type": "qwen2", "hidden_size": 80,
    "intermediate_size": 216, "num_hidden_layers": 1, "num_attention_heads": 5,
    "num_key_value_heads": 1, "vocab_size": 300, "torch_dtype": "float16"})");
  ASSERT_TRUE(qw.ok());
  EXPECT_TRUE(qw->qkv_bias);
  EXPECT_EQ(qw->dtype, ss::DType::kF16);

  struct Bad {
    const char* json;
    const char* needle;
  } bad[] = {
      {R"({"architectures": ["GPT2LMHeadModel"], "hidden_size": 8})",
       "unknown architecture 'GPT2LMHeadModel'"},
      {R"({"architectures": ["LlamaForCausalLM"]})", "'hidden_size' is missing"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": -4, "intermediate_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 1, "vocab_size": 4})",
       "'hidden_size'"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 3,
          "vocab_size": 4})",
       "'num_key_value_heads'"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 4,
          "rope_scaling": {"rope_type": "yarn", "factor": 4}})",
       "'yarn'"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 4,
          "torch_dtype": "int4"})",
       "'int4'"},
      {"[1, 2]", "not a JSON object"},
      {"{", "not valid JSON"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 8,
          "num_hidden_layers": 100000000, "num_attention_heads": 4, "vocab_size": 4})",
       "num_hidden_layers = 100000000 is outside 1..1024"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 4611686018427388204})",
       "vocab_size"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 4,
          "hidden_act": "gelu"})",
       "hidden_act \"gelu\" is not supported"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 300,
          "eos_token_id": [2, 300]})",
       "eos_token_id = 300 is outside the vocabulary [0, 300)"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 300,
          "bos_token_id": -5})",
       "bos_token_id = -5 is outside the vocabulary"},
  };
  for (const Bad& b : bad) {
    auto r = ss::model_config_parse(b.json, "cfg/config.json");
    ASSERT_FALSE(r.ok()) << b.json;
    EXPECT_NE(r.status().message().find(b.needle), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("cfg/config.json"), std::string::npos);
  }
}

TEST(Synth, GeneratorIsChunkInvariantAndRoughlyNormal) {
  const int64_t n = 100003;
  std::vector<uint16_t> whole(n), parts(n);
  ss::synth_fill_bf16(42, "w", 0, n, 0.02f, whole.data());
  for (int64_t a = 0; a < n;) {
    int64_t len = std::min<int64_t>(n - a, 1 + (a * 7919) % 4099);
    ss::synth_fill_bf16(42, "w", a, len, 0.02f, parts.data() + a);
    a += len;
  }
  EXPECT_EQ(whole, parts);
  std::vector<uint16_t> other(n);
  ss::synth_fill_bf16(43, "w", 0, n, 0.02f, other.data());
  EXPECT_NE(whole, other);
  double s = 0, s2 = 0;
  for (auto h : whole) {
    double v = ss::bf16_to_float(h);
    s += v;
    s2 += v * v;
  }
  double mean = s / n, sd = std::sqrt(s2 / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.001);
  EXPECT_NEAR(sd, 0.02, 0.001);
}

TEST(Checkpoint, RoundTripEveryPatternAndQuant) {
  for (const char* arch : {"tiny-llama", "tiny-qwen2"}) {
    std::string src_dir = tmp(std::string("src_") + arch);
    ss::SynthOptions so;
    so.arch = arch;
    so.out = src_dir;
    so.seed = std::random_device{}();
    ASSERT_TRUE(ss::synth_checkpoint(so).ok());
    auto src = ss::open_hf_source(src_dir);
    ASSERT_TRUE(src.ok()) << src.status().to_string();
    auto store = ss::TensorStore::open_dir(src_dir);
    ASSERT_TRUE(store.ok());
    const auto linears = ss::model_linears((*src)->config());

    // Wanda norms: fresh random, all positive.
    std::mt19937 rng(so.seed);
    std::map<std::string, std::vector<float>> norms;
    for (auto& l : linears) {
      auto& v = norms[l.name];
      for (int64_t k = 0; k < l.K; ++k)
        v.push_back(std::uniform_real_distribution<float>(0.1f, 5)(rng));
    }
    for (const char* pat : {"2:4", "4:6", "6:8", "8:10"}) {
      for (auto q : {ss::QuantMode::kNone, ss::QuantMode::kInt8, ss::QuantMode::kFp8}) {
        for (auto pm : {ss::PruneMethod::kMagnitude, ss::PruneMethod::kWanda}) {
          // Wanda only with 6:8 to keep the test fast (the selection path is the same).
          if (pm == ss::PruneMethod::kWanda && std::string(pat) != "6:8") continue;
          SCOPED_TRACE(std::string(arch) + " " + pat + " " + ss::quant_mode_name(q) + " " +
                       ss::prune_method_name(pm));
          ss::ConvertOptions opt;
          opt.out = tmp(std::string("out_") + arch);
          opt.pattern = *ss::Pattern::parse(pat);
          opt.quant = q;
          opt.prune = pm;
          opt.threads = 2;
          opt.max_shard_bytes = 60000;  // several shards even for the tiny models
          if (pm == ss::PruneMethod::kWanda) opt.act_norms = norms;
          ss::ConvertReport rep;
          ss::Status s = ss::convert_checkpoint(**src, opt, &rep);
          ASSERT_TRUE(s.ok()) << s.to_string();
          EXPECT_EQ(rep.linears, static_cast<int64_t>(linears.size()));
          auto ck = ss::Checkpoint::open(opt.out);
          ASSERT_TRUE(ck.ok()) << ck.status().to_string();
          EXPECT_TRUE(ck->is_slidesparse());
          EXPECT_EQ(ck->pattern(), opt.pattern);
          EXPECT_EQ(ck->quant(), q);
          EXPECT_EQ(ck->prune(), pm);
          for (const auto& l : linears) {
            auto wv = store->view(l.weight_name());
            auto wf = ss::tensor_to_f32(l.weight_name(), *wv);
            ss::NmTensor want =
                expected_nm(*wf, l.N, l.K, opt.pattern, pm,
                            pm == ss::PruneMethod::kWanda ? norms[l.name].data() : nullptr, q);
            auto got = ck->nm_linear(l.name);
            ASSERT_TRUE(got.ok()) << got.status().to_string();
            EXPECT_EQ(got->N, l.N);
            EXPECT_EQ(got->K, l.K);
            EXPECT_EQ(got->value_dtype, want.value_dtype) << l.name;
            EXPECT_EQ(got->masks, want.masks) << l.name;
            EXPECT_EQ(got->values, want.values) << l.name;
            ASSERT_EQ(got->scales.size(), want.scales.size()) << l.name;
            for (size_t r = 0; r < want.scales.size(); ++r)
              ASSERT_EQ(std::memcmp(&got->scales[r], &want.scales[r], 4), 0) << l.name << " " << r;
            auto dense = ck->dense_linear_f32(l.name);
            ASSERT_TRUE(dense.ok());
            EXPECT_EQ(*dense, ss::nm_to_dense_f32(want)) << l.name;
            if (l.has_bias) {
              auto b0 = store->view(l.bias_name());
              auto b1 = ck->view(l.bias_name());
              ASSERT_TRUE(b1.ok()) << l.bias_name();
              EXPECT_EQ(0, std::memcmp(b0->data, b1->data, b0->nbytes));
            }
          }
          // Every non-linear tensor is byte-identical.
          for (const auto& n : store->names()) {
            if (ss::linear_index_of_weight(linears, n) >= 0) continue;
            auto a = store->view(n);
            auto b = ck->view(n);
            ASSERT_TRUE(b.ok()) << n;
            EXPECT_EQ(a->shape, b->shape);
            EXPECT_EQ(0, std::memcmp(a->data, b->data, a->nbytes)) << n;
          }
          EXPECT_EQ(read_all(src_dir + "/config.json"), read_all(opt.out + "/config.json"));
          EXPECT_EQ(read_all(src_dir + "/generation_config.json"),
                    read_all(opt.out + "/generation_config.json"));
        }
      }
    }
  }
}

TEST(Checkpoint, ExportDensePrunedAndNormsFile) {
  std::string src_dir = tmp("exp_src");
  ss::SynthOptions so;
  so.arch = "tiny-qwen2";
  so.out = src_dir;
  so.seed = std::random_device{}();
  ASSERT_TRUE(ss::synth_checkpoint(so).ok());
  auto src = ss::open_hf_source(src_dir);
  ASSERT_TRUE(src.ok());
  const auto linears = ss::model_linears((*src)->config());

  // Norms file in the documented format.
  std::string norms_path = tmp("norms.safetensors");
  std::vector<ss::TensorInfo> specs;
  for (auto& l : linears) specs.push_back({l.weight_name() + ".act_norm", ss::DType::kF32, {l.K}});
  std::map<std::string, std::vector<float>> norms;
  {
    auto w = ss::SafetensorsWriter::create(norms_path, specs);
    ASSERT_TRUE(w.ok());
    std::mt19937 rng(so.seed);
    for (auto& l : linears) {
      auto& v = norms[l.name];
      for (int64_t k = 0; k < l.K; ++k)
        v.push_back(std::uniform_real_distribution<float>(0, 3)(rng));
      ASSERT_TRUE(w->write(l.weight_name() + ".act_norm", v.data(), v.size() * 4).ok());
    }
    ASSERT_TRUE(w->finish().ok());
  }
  auto loaded = ss::load_act_norms(norms_path, linears);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  EXPECT_EQ(*loaded, norms);

  ss::ConvertOptions opt;
  opt.out = tmp("exp_out");
  opt.export_dense_pruned = tmp("exp_dense");
  opt.pattern = {8, 10};
  opt.prune = ss::PruneMethod::kWanda;
  opt.quant = ss::QuantMode::kInt8;
  opt.act_norms = *loaded;
  ASSERT_TRUE(ss::convert_checkpoint(**src, opt).ok());
  auto ck = ss::Checkpoint::open(opt.out);
  auto dense = ss::Checkpoint::open(opt.export_dense_pruned);
  ASSERT_TRUE(ck.ok() && dense.ok());
  EXPECT_FALSE(dense->is_slidesparse());
  for (auto& l : linears) {
    auto a = ck->dense_linear_f32(l.name);
    auto b = dense->dense_linear_f32(l.name);
    ASSERT_TRUE(a.ok() && b.ok());
    // The export is the dequantized weight rounded to bf16.
    for (size_t i = 0; i < a->size(); ++i)
      ASSERT_EQ(ss::bf16_to_float(ss::float_to_bf16((*a)[i])), (*b)[i]) << l.name << " " << i;
    auto v = dense->view(l.weight_name());
    auto holds = ss::pattern_holds(v->dtype, v->data, l.N, l.K, opt.pattern);
    EXPECT_TRUE(holds.ok() && *holds) << l.name;
  }
  // Norms missing a linear, or with the wrong length.
  std::map<std::string, std::vector<float>> short_norms = norms;
  short_norms.erase(linears[3].name);
  opt.act_norms = short_norms;
  opt.out = tmp("exp_out2");
  opt.export_dense_pruned.clear();
  ss::Status s = ss::convert_checkpoint(**src, opt);
  EXPECT_NE(s.message().find(linears[3].name), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(opt.out));
  EXPECT_FALSE(ss::load_act_norms(src_dir + "/model.safetensors", linears).ok());
}

TEST(Checkpoint, LoaderRejectsInconsistentTensors) {
  std::string src_dir = tmp("bad_src");
  ss::SynthOptions so;
  so.arch = "tiny-llama";
  so.out = src_dir;
  ASSERT_TRUE(ss::synth_checkpoint(so).ok());
  auto src = ss::open_hf_source(src_dir);
  ss::ConvertOptions opt;
  opt.out = tmp("bad_out");
  opt.pattern = {6, 8};
  opt.quant = ss::QuantMode::kFp8;
  ASSERT_TRUE(ss::convert_checkpoint(**src, opt).ok());
  // slidesparse_config.json disagreeing with config.json.
  std::string sc = read_all(opt.out + "/slidesparse_config.json");
  std::string bad = sc;
  bad.replace(bad.find("\"6:8\""), 5, "\"4:6\"");
  std::ofstream(opt.out + "/slidesparse_config.json", std::ios::trunc) << bad;
  auto ck = ss::Checkpoint::open(opt.out);
  ASSERT_TRUE(ck.ok());  // the header is consistent; the tensors are not
  auto nm = ck->nm_linear("model.layers.0.self_attn.q_proj");
  ASSERT_FALSE(nm.ok());
  EXPECT_NE(nm.status().message().find("model.layers.0.self_attn.q_proj.nm_values"),
            std::string::npos)
      << nm.status().message();
  bad = sc;
  bad.replace(bad.find("\"format_version\": 1"), 19, "\"format_version\": 2");
  std::ofstream(opt.out + "/slidesparse_config.json", std::ios::trunc) << bad;
  EXPECT_NE(ss::Checkpoint::open(opt.out).status().message().find("format_version"),
            std::string::npos);
  std::ofstream(opt.out + "/slidesparse_config.json", std::ios::trunc) << sc;
  ck = ss::Checkpoint::open(opt.out);
  ASSERT_TRUE(ck.ok());
  EXPECT_TRUE(ck->nm_linear("model.layers.0.self_attn.q_proj").ok());
  EXPECT_FALSE(ck->nm_linear("model.layers.9.self_attn.q_proj").ok());
  auto rep = ss::inspect_checkpoint(opt.out);
  ASSERT_TRUE(rep.ok());
  EXPECT_TRUE(rep->all_verified());
  for (auto& l : rep->linears) {
    EXPECT_EQ(l.K_pad != l.K, l.K % 8 != 0);
    EXPECT_NEAR(static_cast<double>(l.bytes) / l.dense_bytes, (6.0 + 1.0) / 8.0 + 4.0 / l.K, 0.05);
  }
}

namespace {
// Wraps a source and fails reading the k-th tensor: convert must leave no output behind.
class FailingSource : public ss::WeightSource {
 public:
  FailingSource(std::unique_ptr<ss::WeightSource> s, int fail_at)
      : s_(std::move(s)), fail_at_(fail_at) {}
  std::string description() const override { return s_->description(); }
  const ss::ModelConfig& config() const override { return s_->config(); }
  std::string config_json() const override { return s_->config_json(); }
  std::vector<std::string> aux_files() const override { return s_->aux_files(); }
  std::vector<std::string> input_paths() const override { return s_->input_paths(); }
  std::vector<ss::TensorInfo> tensors() const override { return s_->tensors(); }
  ss::Expected<ss::SourceTensor> read(const std::string& name) const override {
    if (reads_++ == fail_at_) return ss::io_error("injected read failure of '" + name + "'");
    return s_->read(name);
  }

 private:
  std::unique_ptr<ss::WeightSource> s_;
  int fail_at_;
  mutable int reads_ = 0;
};
}  // namespace

TEST(Checkpoint, FailureMidwayLeavesNoOutput) {
  std::string src_dir = tmp("mid_src");
  ss::SynthOptions so;
  so.arch = "tiny-qwen2";
  so.out = src_dir;
  ASSERT_TRUE(ss::synth_checkpoint(so).ok());
  for (int fail_at : {0, 7, 20}) {
    auto src = ss::open_hf_source(src_dir);
    FailingSource fs_src(std::move(*src), fail_at);
    ss::ConvertOptions opt;
    opt.out = tmp("mid_out");
    opt.export_dense_pruned = tmp("mid_dense");
    opt.max_shard_bytes = 50000;
    ss::Status s = ss::convert_checkpoint(fs_src, opt);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("injected"), std::string::npos);
    for (auto& e : fs::directory_iterator(fs::path(opt.out).parent_path())) {
      std::string n = e.path().filename().string();
      EXPECT_EQ(n.find("mid_out"), std::string::npos) << n;
      EXPECT_EQ(n.find("mid_dense"), std::string::npos) << n;
    }
  }
  // --force over an existing directory: a failure keeps the old one intact.
  std::string out = tmp("mid_keep");
  fs::create_directories(out);
  std::ofstream(out + "/old.txt") << "old";
  auto src = ss::open_hf_source(src_dir);
  FailingSource fs_src(std::move(*src), 5);
  ss::ConvertOptions opt;
  opt.out = out;
  opt.force = true;
  EXPECT_FALSE(ss::convert_checkpoint(fs_src, opt).ok());
  EXPECT_EQ(read_all(out + "/old.txt"), "old");
}

namespace {
// Absolute byte offset of tensor `name` in a single-file checkpoint's model.safetensors.
size_t tensor_offset(const std::string& file, const std::string& name) {
  std::string raw = read_all(file);
  uint64_t hl = 0;
  std::memcpy(&hl, raw.data(), 8);
  auto h = nlohmann::json::parse(raw.substr(8, hl));
  return 8 + hl + h[name]["data_offsets"][0].get<size_t>();
}
void patch(const std::string& file, size_t off, const void* bytes, size_t n) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(off));
  f.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(n));
}
}  // namespace

TEST(Checkpoint, InspectFlagsOutOfRangeValuesNaNScalesAndPadding) {
  std::string src_dir = tmp("flags_src");
  ss::SynthOptions so;
  so.arch = "tiny-llama";  // down_proj K = 172 = 21*8 + 4: the last 6:8 block is half padding
  so.out = src_dir;
  so.seed = std::random_device{}();
  ASSERT_TRUE(ss::synth_checkpoint(so).ok());
  auto src = ss::open_hf_source(src_dir);
  ss::ConvertOptions opt;
  opt.out = tmp("flags_ok");
  opt.pattern = {6, 8};
  opt.quant = ss::QuantMode::kInt8;
  ASSERT_TRUE(ss::convert_checkpoint(**src, opt).ok());
  const std::string P = "model.layers.1.mlp.down_proj";
  const int64_t blocks = 22, n = 6;
  auto fresh = [&](const std::string& name) {
    std::string d = tmp(name);
    fs::copy(opt.out, d);
    return d;
  };
  auto problem_of = [&](const std::string& d) -> std::string {
    auto rep = ss::inspect_checkpoint(d, 1);
    if (!rep.ok()) return "open failed: " + rep.status().message();
    for (auto& l : rep->linears)
      if (!l.verified) return l.name + ": " + l.problem;
    return "";
  };
  EXPECT_EQ(problem_of(opt.out), "");

  // int8 value -128 (outside the symmetric range).
  std::string d = fresh("flags_m128");
  int8_t m128 = -128;
  patch(d + "/model.safetensors", tensor_offset(d + "/model.safetensors", P + ".nm_values") + 3,
        &m128, 1);
  EXPECT_NE(problem_of(d).find("-128"), std::string::npos) << problem_of(d);

  // A NaN weight scale: the loader refuses it.
  d = fresh("flags_nan");
  float nan = std::nanf("");
  patch(d + "/model.safetensors",
        tensor_offset(d + "/model.safetensors", P + ".weight_scale") + 4 * 5, &nan, 4);
  auto ck = ss::Checkpoint::open(d);
  ASSERT_TRUE(ck.ok());
  auto nm = ck->nm_linear(P);
  ASSERT_FALSE(nm.ok());
  EXPECT_NE(nm.status().message().find(P + ".weight_scale' row 5"), std::string::npos)
      << nm.status().message();

  // A nonzero stored at a padding position (>= K) of the last block of row 2.
  d = fresh("flags_pad");
  std::string f = d + "/model.safetensors";
  auto ck0 = ss::Checkpoint::open(d);
  auto t = ck0->nm_linear(P);
  ASSERT_TRUE(t.ok());
  const int64_t row = 2;
  const uint16_t mask = t->masks[row * blocks + blocks - 1];
  int slot = 0, pad_slot = -1;
  for (int i = 0; i < 8; ++i) {
    if (!(mask >> i & 1)) continue;
    if (i >= 4 && pad_slot < 0) pad_slot = slot;
    ++slot;
  }
  ASSERT_GE(pad_slot, 0) << "6 kept of 4 real + 4 padding positions: padding must be selected";
  int8_t one = 1;
  patch(f,
        tensor_offset(f, P + ".nm_values") +
            static_cast<size_t>(row * blocks * n + (blocks - 1) * n + pad_slot),
        &one, 1);
  EXPECT_NE(problem_of(d).find("padding position"), std::string::npos) << problem_of(d);
}

// What the loaders check beyond what convert wrote: exact shapes of the tensors read as they are,
// no layers past config.json's count, and no value codes a converter never writes.
TEST(Checkpoint, LoadersCheckShapesLayerCountAndValueCodes) {
  std::string src_dir = tmp("load_src");
  ss::SynthOptions so;
  so.arch = "tiny-llama";
  so.out = src_dir;
  ASSERT_TRUE(ss::synth_checkpoint(so).ok());
  auto fresh = [&](const std::string& from, const std::string& name) {
    std::string d = tmp(name);
    fs::copy(from, d);
    return d;
  };

  // A tensor stored transposed (same element count): the shaped read refuses it.
  auto ck0 = ss::Checkpoint::open(src_dir);
  ASSERT_TRUE(ck0.ok());
  const ss::ModelConfig& c = ck0->config();
  const std::string E = "model.embed_tokens.weight";
  ASSERT_TRUE(ck0->tensor_f32(E, {c.vocab_size, c.hidden_size}).ok());
  auto wrong = ck0->tensor_f32(E, {c.hidden_size, c.vocab_size});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find(
                "tensor '" + E + "': expected shape [" + std::to_string(c.hidden_size) + "," +
                std::to_string(c.vocab_size) + "], got [" + std::to_string(c.vocab_size) + "," +
                std::to_string(c.hidden_size) + "]"),
            std::string::npos)
      << wrong.status().message();
  EXPECT_NE(wrong.status().message().find("checkpoint '" + src_dir + "'"), std::string::npos);
  EXPECT_FALSE(ck0->tensor_f32("model.norm.weight", {c.hidden_size, 1}).ok());

  // config.json with fewer layers than the tensors: open and convert refuse, naming a tensor.
  {
    std::string d = fresh(src_dir, "load_layers");
    std::string cfg = read_all(d + "/config.json");
    const std::string key = "\"num_hidden_layers\": " + std::to_string(c.num_layers);
    ASSERT_NE(cfg.find(key), std::string::npos) << cfg;
    cfg.replace(cfg.find(key), key.size(),
                "\"num_hidden_layers\": " + std::to_string(c.num_layers - 1));
    std::ofstream(d + "/config.json", std::ios::trunc) << cfg;
    auto ck = ss::Checkpoint::open(d);
    ASSERT_FALSE(ck.ok());
    const std::string last = "model.layers." + std::to_string(c.num_layers - 1) + ".";
    EXPECT_NE(ck.status().message().find("tensor '" + last), std::string::npos)
        << ck.status().message();
    EXPECT_NE(ck.status().message().find("past the last layer"), std::string::npos);
    auto src = ss::open_hf_source(d);
    ASSERT_TRUE(src.ok());
    ss::ConvertOptions opt;
    opt.out = tmp("load_layers_out");
    auto st = ss::convert_checkpoint(**src, opt);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("past the last layer"), std::string::npos) << st.message();
    EXPECT_FALSE(fs::exists(opt.out));
  }

  // A value code convert never writes, per storage dtype: nm_linear (every engine's loader)
  // refuses it with the row and the value's index in the row; inspect reports it.
  const std::string P = "model.layers.0.mlp.up_proj";
  struct Case {
    ss::QuantMode q;
    std::vector<uint8_t> code;  // little-endian bytes of one stored value
    const char* needle;
  } cases[] = {{ss::QuantMode::kInt8, {0x80}, "is -128, outside [-127, 127]"},
               {ss::QuantMode::kFp8, {0xff}, "is the NaN code"},
               {ss::QuantMode::kNone, {0x80, 0x7f}, "is inf or NaN"}};  // bf16 +inf
  auto src = ss::open_hf_source(src_dir);
  ASSERT_TRUE(src.ok());
  for (const Case& k : cases) {
    ss::ConvertOptions opt;
    opt.out = tmp(std::string("load_codes_") + ss::quant_mode_name(k.q));
    opt.pattern = {6, 8};
    opt.quant = k.q;
    ASSERT_TRUE(ss::convert_checkpoint(**src, opt).ok());
    auto ck = ss::Checkpoint::open(opt.out);
    ASSERT_TRUE(ck.ok());
    auto good = ck->nm_linear(P);
    ASSERT_TRUE(good.ok());
    const int64_t vpr = good->values_per_row(), row = 3, col = vpr - 2;
    const std::string f = opt.out + "/model.safetensors";
    patch(f, tensor_offset(f, P + ".nm_values") + (row * vpr + col) * k.code.size(), k.code.data(),
          k.code.size());
    ck = ss::Checkpoint::open(opt.out);
    ASSERT_TRUE(ck.ok());
    auto nm = ck->nm_linear(P);
    ASSERT_FALSE(nm.ok()) << ss::quant_mode_name(k.q);
    EXPECT_NE(nm.status().message().find(P + ".nm_values' row 3 value " + std::to_string(col) +
                                         " " + k.needle),
              std::string::npos)
        << nm.status().message();
    auto rep = ss::inspect_checkpoint(opt.out, 1);
    ASSERT_TRUE(rep.ok());
    EXPECT_FALSE(rep->all_verified());
    for (const auto& l : rep->linears) {
      if (l.verified) continue;
      EXPECT_EQ(l.name, P);
      // The report is about one checkpoint: its problems do not repeat the directory.
      EXPECT_EQ(l.problem.find("checkpoint '"), std::string::npos) << l.problem;
      EXPECT_NE(l.problem.find(k.needle), std::string::npos) << l.problem;
    }
  }
}
