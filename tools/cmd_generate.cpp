// `slidesparse generate`: greedy or top-p generation, streaming tokens to stdout, on the CPU
// engine or (--device cuda) the CUDA engine, which then reports TTFT and tokens/s on stderr.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "cli.h"
#include "device_flags.h"
#include "slidesparse/engine.h"
#include "slidesparse/tokenizer.h"

namespace slidesparse::cli {
namespace {

struct GenArgs {
  std::string model, prompt, tokens;
  DeviceFlags dev;
  int64_t max_new = 64;
  float temperature = 0.0f, top_p = 0.9f;
  uint64_t seed = 1;
  bool print_ids = false;
};

// Where generated tokens go: streamed as text pieces, or (--print-ids) one line of ids at the end.
class Emitter {
 public:
  Emitter(const GenArgs& a, const Tokenizer* tok) : a_(a), tok_(tok) {}
  // Echo the prompt: once the model has loaded, so that a model that fails to load prints nothing.
  void start() {
    if (!a_.print_ids) {
      std::fputs(a_.prompt.c_str(), stdout);
      std::fflush(stdout);
    }
  }
  void token(int32_t t) {
    if (a_.print_ids) {
      ids_ += (ids_.empty() ? "" : ",") + std::to_string(t);
      return;
    }
    std::fputs(tok_->piece(t).c_str(), stdout);
    std::fflush(stdout);
  }
  void finish() { std::puts(a_.print_ids ? ids_.c_str() : ""); }

 private:
  const GenArgs& a_;
  const Tokenizer* tok_;
  std::string ids_;
};

bool is_eos(const ModelConfig& c, int32_t t) {
  for (int64_t e : c.eos_token_ids)
    if (e == t) return true;
  return false;
}

#ifdef SLIDESPARSE_WITH_CUDA
// The CUDA engine: one sequence, prefill then graph-replayed decode steps; greedy picks come from
// the device argmax, sampling reads the logits back. TTFT and decode tokens/s on stderr.
Status generate_cuda(const GenArgs& a, Emitter* out, const std::vector<int32_t>& ids) {
  using Clock = std::chrono::steady_clock;
  const int64_t P = static_cast<int64_t>(ids.size());
  int64_t ctx = P + std::max<int64_t>(a.max_new, 1);
  // The prompt must fit; the generation stops at the model's maximum context (as on the CPU).
  if (auto cfg = model_config_load(a.model + "/config.json"); cfg.ok())
    ctx = std::max(P, std::min(ctx, cfg->max_position_embeddings));
  SS_ASSIGN_OR_RETURN(CudaModelOptions o, cuda_options(a.dev, ctx));
  SS_ASSIGN_OR_RETURN(std::unique_ptr<CudaModel> m, CudaModel::load(a.model, o));
  if (!m->tuning_note().empty()) std::fprintf(stderr, "%s\n", m->tuning_note().c_str());
  out->start();
  const int64_t V = m->config().vocab_size;
  const bool greedy = a.temperature <= 0;
  std::vector<float> logits(static_cast<size_t>(V));
  SamplerState st;
  st.rng ^= a.seed * 0x9E3779B97F4A7C15ULL;
  int32_t t = 0;
  const auto t0 = Clock::now();
  SS_RETURN_IF_ERROR(m->prefill(ids.data(), 1, P, greedy ? nullptr : logits.data(), &t));
  const auto t1 = Clock::now();
  if (!greedy) t = sample_token(logits.data(), V, a.temperature, a.top_p, &st);
  int64_t decoded = 0;
  for (int64_t i = 0; i < a.max_new; ++i) {
    if (is_eos(m->config(), t)) break;
    out->token(t);
    if (i + 1 == a.max_new || m->cache_len(0) + 1 > m->max_ctx()) break;
    int32_t next = 0;
    SS_RETURN_IF_ERROR(m->decode(&t, 1, greedy ? nullptr : logits.data(), &next));
    if (!greedy) next = sample_token(logits.data(), V, a.temperature, a.top_p, &st);
    ++decoded;
    t = next;
  }
  const auto t2 = Clock::now();
  out->finish();
  const double ttft = std::chrono::duration<double, std::milli>(t1 - t0).count();
  const double dec_s = std::chrono::duration<double>(t2 - t1).count();
  std::fprintf(stderr, "[%s] prompt %lld tokens: TTFT %.2f ms; %lld decode steps: %.1f tokens/s\n",
               m->description().c_str(), static_cast<long long>(P), ttft,
               static_cast<long long>(decoded), decoded > 0 ? decoded / dec_s : 0.0);
  return Status::Ok();
}
#endif

Status generate_cpu(const GenArgs& a, Emitter* out, const std::vector<int32_t>& ids) {
  auto be = make_cpu_backend();
  SS_ASSIGN_OR_RETURN(std::unique_ptr<Model> m, Model::load(a.model, be.get()));
  out->start();
  const int64_t V = m->config().vocab_size;
  std::vector<float> logits(ids.size() * static_cast<size_t>(V));
  SS_RETURN_IF_ERROR(m->forward(ids.data(), static_cast<int64_t>(ids.size()), logits.data()));
  SamplerState st;
  st.rng ^= a.seed * 0x9E3779B97F4A7C15ULL;
  const float* last = logits.data() + (ids.size() - 1) * static_cast<size_t>(V);
  for (int64_t i = 0; i < a.max_new; ++i) {
    int32_t t = sample_token(last, V, a.temperature, a.top_p, &st);
    if (is_eos(m->config(), t)) break;
    out->token(t);
    if (m->cache_len() + 1 > m->config().max_position_embeddings) break;
    SS_RETURN_IF_ERROR(m->forward(&t, 1, logits.data()));
    last = logits.data();
  }
  out->finish();
  return Status::Ok();
}

CommandRegistrar reg(
    "", "generate", "generate text from a prompt (CPU or CUDA engine)",
    [](CLI::App& sub) -> CommandFn {
      auto a = std::make_shared<GenArgs>();
      sub.add_option("model", a->model, "GGUF file, HF directory or SlideSparse directory")
          ->required();
      sub.add_option("--prompt", a->prompt, "prompt text");
      sub.add_option("--tokens", a->tokens, "prompt as comma-separated token ids (no --prompt)");
      sub.add_flag("--print-ids", a->print_ids,
                   "print the generated ids on one line (comma-separated) instead of text");
      sub.add_option("--max-new-tokens", a->max_new, "tokens to generate (default 64)");
      sub.add_option("--temperature", a->temperature, "0 = greedy (default)");
      sub.add_option("--top-p", a->top_p, "nucleus sampling threshold (default 0.9)");
      sub.add_option("--seed", a->seed, "sampling seed (default 1)")->check(kDigits);
      add_device_flags(sub, &a->dev);
      return [a]() -> Status {
        SS_RETURN_IF_ERROR(check_device_flags(a->dev));
        if (a->max_new < 0) return invalid_argument("--max-new-tokens must be >= 0");
        if (!(a->temperature >= 0 && std::isfinite(a->temperature)) ||
            !(a->top_p > 0 && a->top_p <= 1)) {
          return invalid_argument("--temperature must be >= 0 and --top-p in (0, 1]");
        }
        if (a->prompt.empty() == a->tokens.empty())
          return invalid_argument("generate: give exactly one of --prompt TEXT and --tokens IDS");
        std::unique_ptr<Tokenizer> tok;
        if (!a->prompt.empty() || !a->print_ids) {
          SS_ASSIGN_OR_RETURN(Tokenizer t, Tokenizer::from_model_path(a->model));
          tok = std::make_unique<Tokenizer>(std::move(t));
        }
        std::vector<int32_t> ids;
        if (!a->tokens.empty()) {
          SS_ASSIGN_OR_RETURN(ids, parse_token_ids(a->tokens));
        } else {
          ids = tok->encode(a->prompt);
        }
        if (ids.empty()) return invalid_argument("generate: the prompt has no tokens");
        Emitter out(*a, tok.get());
#ifdef SLIDESPARSE_WITH_CUDA
        if (a->dev.device == "cuda") return generate_cuda(*a, &out, ids);
#endif
        return generate_cpu(*a, &out, ids);
      };
    });

CommandRegistrar reg_tok(
    "", "tokenize", "print the token ids of a text (comma-separated)",
    [](CLI::App& sub) -> CommandFn {
      auto model = std::make_shared<std::string>();
      auto text = std::make_shared<std::string>();
      sub.add_option("model", *model, "GGUF file or directory with tokenizer.json")->required();
      sub.add_option("--text", *text, "UTF-8 text file")->required();
      return [model, text]() -> Status {
        SS_ASSIGN_OR_RETURN(std::string t, load_text_file(*text));
        SS_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::from_model_path(*model));
        const std::vector<int32_t> ids = tok.encode(t);
        std::string out;
        for (size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
        std::puts(out.c_str());
        return Status::Ok();
      };
    });

}  // namespace
}  // namespace slidesparse::cli
