// `slidesparse eval ppl` (sliding-window perplexity) and `eval logits` (raw logits of given token
// ids, for comparisons with Hugging Face transformers).
#include <cstdio>
#include <memory>

#include "cli.h"
#include "core/fs_util.h"
#include "device_flags.h"
#include "slidesparse/engine.h"
#include "slidesparse/tokenizer.h"

namespace slidesparse::cli {
namespace {

struct SparseFlags {
  std::string pattern, prune = "magnitude", quant = "none", calib_text;
  int64_t calib_tokens = 2048;
};

void add_sparse_flags(CLI::App& sub, SparseFlags* f) {
  sub.add_option("--pattern", f->pattern, "prune the dense model at load time to n:m (e.g. 6:8)");
  sub.add_option("--prune", f->prune, "magnitude | wanda (default magnitude)");
  sub.add_option("--quant", f->quant, "none | int8 | fp8 (default none)");
  sub.add_option("--calib-text", f->calib_text,
                 "Wanda calibration text (default: the calibration part of the fortunes)");
  sub.add_option("--calib-tokens", f->calib_tokens, "Wanda calibration tokens (default 2048)");
}

// Loads MODEL, pruned at load time when --pattern is given (Wanda: calibrated on the dense model).
Expected<std::unique_ptr<Model>> load_model(const std::string& path, Backend* be,
                                            const Tokenizer& tok, const SparseFlags& f,
                                            int64_t ctx) {
  SparsifyOptions sp;
  if (f.pattern.empty()) {
    if (f.prune != "magnitude" || f.quant != "none" || !f.calib_text.empty()) {
      return invalid_argument("--prune/--quant/--calib-text need --pattern");
    }
    return Model::load(path, be);
  }
  sp.enabled = true;
  SS_ASSIGN_OR_RETURN(sp.pattern, Pattern::parse(f.pattern));
  SS_ASSIGN_OR_RETURN(sp.prune, prune_method_parse(f.prune));
  SS_ASSIGN_OR_RETURN(sp.quant, quant_mode_parse(f.quant));
  if (sp.prune == PruneMethod::kWanda) {
    std::string text;
    if (f.calib_text.empty()) {
      SS_ASSIGN_OR_RETURN(text, default_calib_text());
    } else {
      SS_ASSIGN_OR_RETURN(text, load_text_file(f.calib_text));
    }
    std::vector<int32_t> ids = tok.encode(text);
    if (f.calib_tokens < 1) return invalid_argument("--calib-tokens must be >= 1");
    if (static_cast<int64_t>(ids.size()) > f.calib_tokens)
      ids.resize(static_cast<size_t>(f.calib_tokens));
    SS_ASSIGN_OR_RETURN(std::unique_ptr<Model> dense, Model::load(path, be));
    SS_ASSIGN_OR_RETURN(sp.act_norms, calibrate_act_norms(*dense, ids, ctx));
  } else if (!f.calib_text.empty()) {
    return invalid_argument("--calib-text is only used with --prune wanda");
  }
  return Model::load(path, be, sp);
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += c;
    }
  }
  return o;
}

CommandRegistrar reg_ppl(
    "eval", "ppl", "sliding-window perplexity of a model (GGUF file, HF or SlideSparse dir)",
    [](CLI::App& sub) -> CommandFn {
      struct Args {
        std::string model, text;
        int64_t max_tokens = 4096, ctx = 512, stride = 0;
        bool json = false;
        SparseFlags sf;
      };
      auto a = std::make_shared<Args>();
      sub.add_option("model", a->model, "GGUF file, HF directory or SlideSparse directory")
          ->required();
      sub.add_option("--text", a->text, "UTF-8 text file (default: the fortunes evaluation part)");
      sub.add_option("--max-tokens", a->max_tokens, "evaluate the first N tokens (default 4096)");
      sub.add_option("--ctx", a->ctx, "window length L (default 512)");
      CLI::Option* stride_opt =
          sub.add_option("--stride", a->stride, "window stride (default L/2)");
      sub.add_flag("--json", a->json, "one JSON object on stdout");
      add_sparse_flags(sub, &a->sf);
      return [a, stride_opt]() -> Status {
        if (a->max_tokens < 2) return invalid_argument("--max-tokens must be >= 2");
        if (a->ctx < 2) return invalid_argument("--ctx must be >= 2");
        if (stride_opt->count() > 0 && a->stride < 1)
          return invalid_argument("--stride must be >= 1");
        std::string text;
        if (a->text.empty()) {
          SS_ASSIGN_OR_RETURN(text, default_eval_text());
        } else {
          SS_ASSIGN_OR_RETURN(text, load_text_file(a->text));
        }
        SS_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::from_model_path(a->model));
        std::vector<int32_t> ids = tok.encode(text);
        if (static_cast<int64_t>(ids.size()) > a->max_tokens)
          ids.resize(static_cast<size_t>(a->max_tokens));
        auto be = make_cpu_backend();
        // Context check before any heavy work.
        SS_ASSIGN_OR_RETURN(std::unique_ptr<Model> m,
                            load_model(a->model, be.get(), tok, a->sf, a->ctx));
        const int64_t stride = a->stride > 0 ? a->stride : std::max<int64_t>(1, a->ctx / 2);
        SS_ASSIGN_OR_RETURN(PplResult r, eval_perplexity(*m, ids, a->ctx, stride));
        if (a->json) {
          std::printf(
              "{\"model\": \"%s\", \"description\": \"%s\", \"ppl\": %.6f, \"ppl_stderr\": %.6f, "
              "\"nll_mean\": %.6f, \"nll_stderr\": %.6f, \"tokens\": %lld, \"forwarded_tokens\": "
              "%lld, "
              "\"ctx\": %lld, \"stride\": %lld, \"seconds\": %.3f, \"tokens_per_s\": %.2f}\n",
              json_escape(a->model).c_str(), json_escape(m->description()).c_str(), r.ppl,
              r.ppl_stderr, r.nll_mean, r.nll_stderr, static_cast<long long>(r.scored_tokens),
              static_cast<long long>(r.forwarded_tokens), static_cast<long long>(r.ctx),
              static_cast<long long>(r.stride), r.seconds, r.tokens_per_s);
        } else {
          std::printf("model: %s (%s)\n", a->model.c_str(), m->description().c_str());
          std::printf("perplexity: %.4f +- %.4f (mean NLL %.5f +- %.5f nats)\n", r.ppl,
                      r.ppl_stderr, r.nll_mean, r.nll_stderr);
          std::printf("tokens scored: %lld, ctx %lld, stride %lld; %.1f tokens/s (%.1f s)\n",
                      static_cast<long long>(r.scored_tokens), static_cast<long long>(r.ctx),
                      static_cast<long long>(r.stride), r.tokens_per_s, r.seconds);
        }
        return Status::Ok();
      };
    });

CommandRegistrar reg_logits(
    "eval", "logits", "raw fp32 logits [n, vocab] of given token ids (little-endian binary file)",
    [](CLI::App& sub) -> CommandFn {
      struct Args {
        std::string model, tokens, out;
        DeviceFlags dev;
      };
      auto a = std::make_shared<Args>();
      sub.add_option("model", a->model, "GGUF file, HF directory or SlideSparse directory")
          ->required();
      sub.add_option("--tokens", a->tokens, "comma-separated token ids")->required();
      sub.add_option("--out", a->out, "output file: n*vocab fp32 values (replaced if it exists)")
          ->required();
      add_device_flags(sub, &a->dev);
      return [a]() -> Status {
        SS_RETURN_IF_ERROR(check_device_flags(a->dev));
        SS_RETURN_IF_ERROR(core::check_output_file(a->out, {a->model}, "--out"));
        SS_ASSIGN_OR_RETURN(std::vector<int32_t> ids, parse_token_ids(a->tokens));
        const int64_t n = static_cast<int64_t>(ids.size());
        std::vector<float> logits;
        int64_t V = 0;
        if (a->dev.device == "cpu") {
          auto be = make_cpu_backend();
          SS_ASSIGN_OR_RETURN(std::unique_ptr<Model> m, Model::load(a->model, be.get()));
          V = m->config().vocab_size;
          logits.resize(static_cast<size_t>(n * V));
          SS_RETURN_IF_ERROR(m->forward(ids.data(), n, logits.data()));
        } else {
#ifdef SLIDESPARSE_WITH_CUDA
          // One prefill; row i = the logits after ids[0..i].
          SS_ASSIGN_OR_RETURN(CudaModelOptions o, cuda_options(a->dev, n));
          SS_ASSIGN_OR_RETURN(std::unique_ptr<CudaModel> m, CudaModel::load(a->model, o));
          V = m->config().vocab_size;
          logits.resize(static_cast<size_t>(n * V));
          SS_RETURN_IF_ERROR(m->prefill_all_logits(ids.data(), n, logits.data()));
#endif
        }
        SS_RETURN_IF_ERROR(
            core::write_file_atomic(a->out, logits.data(), logits.size() * sizeof(float)));
        std::printf("wrote %lld x %lld logits to %s\n", static_cast<long long>(n),
                    static_cast<long long>(V), a->out.c_str());
        return Status::Ok();
      };
    });

}  // namespace
}  // namespace slidesparse::cli
