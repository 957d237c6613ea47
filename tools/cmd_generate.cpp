// `slidesparse generate`: greedy or top-p generation, streaming tokens to stdout.
#include <cstdio>
#include <memory>

#include "cli.h"
#include "slidesparse/engine.h"
#include "slidesparse/tokenizer.h"

namespace slidesparse::cli {
namespace {

CommandRegistrar reg(
    "", "generate", "generate text from a prompt (CPU engine)", [](CLI::App& sub) -> CommandFn {
      struct Args {
        std::string model, prompt, device = "cpu";
        int64_t max_new = 64;
        float temperature = 0.0f, top_p = 0.9f;
        uint64_t seed = 1;
      };
      auto a = std::make_shared<Args>();
      sub.add_option("model", a->model, "GGUF file, HF directory or SlideSparse directory")
          ->required();
      sub.add_option("--prompt", a->prompt, "prompt text")->required();
      sub.add_option("--max-new-tokens", a->max_new, "tokens to generate (default 64)");
      sub.add_option("--temperature", a->temperature, "0 = greedy (default)");
      sub.add_option("--top-p", a->top_p, "nucleus sampling threshold (default 0.9)");
      sub.add_option("--seed", a->seed, "sampling seed (default 1)");
      sub.add_option("--device", a->device, "cpu (default)");
      return [a]() -> Status {
        if (a->device != "cpu")
          return unsupported("generate: --device " + a->device + " (this build: cpu)");
        if (a->max_new < 0) return invalid_argument("--max-new-tokens must be >= 0");
        if (a->temperature < 0 || !(a->top_p > 0 && a->top_p <= 1)) {
          return invalid_argument("--temperature must be >= 0 and --top-p in (0, 1]");
        }
        SS_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::from_model_path(a->model));
        std::vector<int32_t> ids = tok.encode(a->prompt);
        if (ids.empty()) return invalid_argument("generate: the prompt has no tokens");
        auto be = make_cpu_backend();
        SS_ASSIGN_OR_RETURN(std::unique_ptr<Model> m, Model::load(a->model, be.get()));
        const int64_t V = m->config().vocab_size;
        std::vector<float> logits(ids.size() * static_cast<size_t>(V));
        SS_RETURN_IF_ERROR(m->forward(ids.data(), static_cast<int64_t>(ids.size()), logits.data()));
        SamplerState st;
        st.rng ^= a->seed * 0x9E3779B97F4A7C15ULL;
        const float* last = logits.data() + (ids.size() - 1) * static_cast<size_t>(V);
        std::fputs(a->prompt.c_str(), stdout);
        for (int64_t i = 0; i < a->max_new; ++i) {
          int32_t t = sample_token(last, V, a->temperature, a->top_p, &st);
          bool eos = false;
          for (int64_t e : m->config().eos_token_ids) eos |= e == t;
          if (eos) break;
          std::fputs(tok.piece(t).c_str(), stdout);
          std::fflush(stdout);
          if (m->cache_len() + 1 > m->config().max_position_embeddings) break;
          SS_RETURN_IF_ERROR(m->forward(&t, 1, logits.data()));
          last = logits.data();
        }
        std::fputs("\n", stdout);
        return Status::Ok();
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
