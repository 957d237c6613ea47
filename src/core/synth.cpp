// synth: random-weight Hugging Face checkpoints with real model shapes, streamed to disk.
#include "slidesparse/synth.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/fs_util.h"

namespace slidesparse {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

ModelConfig base(ModelArch arch, int64_t C, int64_t I, int64_t L, int64_t H, int64_t KV, int64_t hd,
                 int64_t V) {
  ModelConfig c;
  c.arch = arch;
  c.hidden_size = C;
  c.intermediate_size = I;
  c.num_layers = L;
  c.num_heads = H;
  c.num_kv_heads = KV;
  c.head_dim = hd;
  c.vocab_size = V;
  c.dtype = DType::kBF16;
  if (arch == ModelArch::kQwen2) {
    c.qkv_bias = true;
    c.rope_theta = 1000000.0;
    c.max_position_embeddings = 32768;
    c.bos_token_id = 151643;
    c.eos_token_ids = {151643};
  } else {
    c.rope_theta = 500000.0;
    c.rms_norm_eps = 1e-5;
    c.max_position_embeddings = 131072;
    c.rope_scaling.kind = "llama3";
    c.rope_scaling.factor = 32.0;
    c.rope_scaling.low_freq_factor = 1.0;
    c.rope_scaling.high_freq_factor = 4.0;
    c.rope_scaling.original_max_position_embeddings = 8192;
    c.tie_word_embeddings = true;
    c.bos_token_id = 128000;
    c.eos_token_ids = {128001};
  }
  return c;
}

}  // namespace

std::vector<std::string> synth_arch_names() {
  return {"tiny-llama", "tiny-qwen2", "llama3.2-1b", "llama3.2-3b", "qwen2.5-7b", "qwen2.5-14b"};
}

Expected<ModelConfig> synth_arch_config(const std::string& arch) {
  // Shapes of the published configs (hidden, intermediate, layers, heads, kv heads, head_dim,
  // vocab); see DESIGN.md's per-linear table.
  if (arch == "tiny-llama") {
    ModelConfig c = base(ModelArch::kLlama, 64, 172, 2, 4, 2, 16, 256);
    c.max_position_embeddings = 512;
    c.rope_scaling.original_max_position_embeddings = 64;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
    return c;
  }
  if (arch == "tiny-qwen2") {
    ModelConfig c = base(ModelArch::kQwen2, 80, 216, 2, 5, 1, 16, 300);
    c.max_position_embeddings = 512;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
    return c;
  }
  if (arch == "llama3.2-1b") return base(ModelArch::kLlama, 2048, 8192, 16, 32, 8, 64, 128256);
  if (arch == "llama3.2-3b") return base(ModelArch::kLlama, 3072, 8192, 28, 24, 8, 128, 128256);
  if (arch == "qwen2.5-7b") {
    ModelConfig c = base(ModelArch::kQwen2, 3584, 18944, 28, 28, 4, 128, 152064);
    c.max_position_embeddings = 131072;
    return c;
  }
  if (arch == "qwen2.5-14b") {
    ModelConfig c = base(ModelArch::kQwen2, 5120, 13824, 48, 40, 8, 128, 152064);
    c.max_position_embeddings = 131072;
    c.rms_norm_eps = 1e-5;
    return c;
  }
  std::string all;
  for (const auto& a : synth_arch_names()) all += (all.empty() ? "" : ", ") + a;
  return invalid_argument("--arch '" + arch + "': unknown architecture, expected one of " + all);
}

void synth_fill_bf16(uint64_t seed, const std::string& name, int64_t first, int64_t count,
                     float stddev, uint16_t* out) {
  // Counter-based: element i uses pair i/2 -> one 64-bit hash -> Box-Muller (cos for even i,
  // sin for odd i). Any chunking gives the same values.
  const uint64_t key = splitmix64(seed ^ fnv1a(name));
  constexpr float kTwoPi = 6.28318530717958647f;
  for (int64_t k = 0; k < count; ++k) {
    const uint64_t i = static_cast<uint64_t>(first + k);
    const uint64_t h = splitmix64(key + (i >> 1) * 0xd1b54a32d192ed03ull);
    const float u1 = (static_cast<float>(h >> 40) + 1.0f) * (1.0f / 16777217.0f);  // (0, 1)
    const float u2 = static_cast<float>((h >> 16) & 0xffffff) * (1.0f / 16777216.0f);
    const float r = std::sqrt(-2.0f * std::log(u1));
    const float z = (i & 1) ? r * std::sin(kTwoPi * u2) : r * std::cos(kTwoPi * u2);
    out[k] = float_to_bf16(stddev * z);
  }
}

Status synth_checkpoint(const SynthOptions& opt) {
  SS_ASSIGN_OR_RETURN(ModelConfig cfg, synth_arch_config(opt.arch));
  SS_ASSIGN_OR_RETURN(core::OutputDir out, core::OutputDir::create(opt.out, opt.force));
  SS_RETURN_IF_ERROR(core::write_file_atomic(core::path_join(out.path(), "config.json"),
                                             model_config_to_json(cfg)));
  nlohmann::json gen = {{"_from_model_config", true}, {"bos_token_id", cfg.bos_token_id}};
  if (cfg.eos_token_ids.size() == 1)
    gen["eos_token_id"] = cfg.eos_token_ids[0];
  else
    gen["eos_token_id"] = cfg.eos_token_ids;
  SS_RETURN_IF_ERROR(core::write_file_atomic(core::path_join(out.path(), "generation_config.json"),
                                             gen.dump(2) + "\n"));
  if (opt.config_only) return out.commit();
  const std::vector<TensorInfo> tensors = model_tensors(cfg);
  SS_ASSIGN_OR_RETURN(ShardedWriter w,
                      ShardedWriter::create(out.path(), tensors, opt.max_shard_bytes));

  int threads = opt.threads > 0
                    ? opt.threads
                    : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  constexpr int64_t kChunk = int64_t{16} << 20;  // elements per write (32 MB of bf16)
  std::vector<uint16_t> buf;
  const auto t0 = std::chrono::steady_clock::now();
  size_t done_bytes = 0;
  for (size_t ti = 0; ti < tensors.size(); ++ti) {
    const TensorInfo& t = tensors[ti];
    const int64_t numel = shape_numel(t.shape);
    const bool is_norm = t.shape.size() == 1 && t.name.find("norm") != std::string::npos;
    for (int64_t c0 = 0; c0 < numel; c0 += kChunk) {
      const int64_t n = std::min(kChunk, numel - c0);
      buf.resize(static_cast<size_t>(n));
      if (is_norm) {
        std::fill(buf.begin(), buf.end(), float_to_bf16(1.0f));
      } else {
        const int64_t per = (n + threads - 1) / threads;
        std::vector<std::thread> pool;
        for (int k = 0; k < threads; ++k) {
          const int64_t b = k * per, e = std::min(n, b + per);
          if (b >= e) break;
          pool.emplace_back([&, b, e] {
            synth_fill_bf16(opt.seed, t.name, c0 + b, e - b, 0.02f, buf.data() + b);
          });
        }
        for (auto& th : pool) th.join();
      }
      SS_RETURN_IF_ERROR(
          w.write(t.name, buf.data(), static_cast<size_t>(n) * 2, static_cast<size_t>(c0) * 2));
    }
    done_bytes += t.nbytes();
    if (opt.progress) {
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "[synth] tensor %zu/%zu %s %.2f GB %.2f GB/s\n", ti + 1, tensors.size(),
                   t.name.c_str(), done_bytes / 1e9, s > 0 ? done_bytes / 1e9 / s : 0.0);
    }
  }
  SS_RETURN_IF_ERROR(w.finish());
  return out.commit();
}

}  // namespace slidesparse
