// `slidesparse convert`: HF checkpoint -> SlideSparse checkpoint (prune, optionally quantize,
// compact n:m values + masks), streamed tensor by tensor.
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "cli.h"
#include "slidesparse/checkpoint.h"
#include "slidesparse/engine.h"
#include "slidesparse/gguf.h"
#include "slidesparse/tokenizer.h"

namespace slidesparse::cli {
namespace {

struct ConvertArgs {
  std::string in, out, pattern = "6:8", prune = "magnitude", quant = "none", norms, dense, shard,
                       calib_text;
  int64_t calib_tokens = 2048;
  bool force = false, progress = false, quiet = false;
  int threads = 0;
};

Status run_convert(const ConvertArgs& a) {
  ConvertOptions opt;
  auto pat = Pattern::parse(a.pattern);
  if (!pat.ok()) return invalid_argument("--pattern: " + pat.status().message());
  opt.pattern = *pat;
  auto pm = prune_method_parse(a.prune);
  if (!pm.ok()) return invalid_argument("--prune: " + pm.status().message());
  opt.prune = *pm;
  auto qm = quant_mode_parse(a.quant);
  if (!qm.ok()) return invalid_argument("--quant: " + qm.status().message());
  opt.quant = *qm;
  if (opt.prune == PruneMethod::kWanda && a.norms.empty() == a.calib_text.empty())
    return invalid_argument(
        "--prune wanda needs exactly one of --norms FILE (activation norms) or --calib-text FILE");
  if (opt.prune != PruneMethod::kWanda && !a.calib_text.empty())
    return invalid_argument("--calib-text is only used with --prune wanda");
  if (opt.prune != PruneMethod::kWanda && !a.norms.empty())
    return invalid_argument("--norms is only used with --prune wanda");
  if (!a.shard.empty()) {
    SS_ASSIGN_OR_RETURN(opt.max_shard_bytes, parse_byte_size(a.shard));
  }
  opt.out = a.out;
  opt.export_dense_pruned = a.dense;
  opt.force = a.force;
  opt.threads = a.threads;
  opt.progress = !a.quiet && (a.progress || ::isatty(2));
  std::error_code ec;  // a GGUF file (HF layout, bf16) or an HF directory
  const bool gguf = std::filesystem::is_regular_file(a.in, ec);
  SS_ASSIGN_OR_RETURN(std::unique_ptr<WeightSource> src,
                      gguf ? open_gguf_source(a.in) : open_hf_source(a.in));
  if (!a.norms.empty()) {
    SS_ASSIGN_OR_RETURN(opt.act_norms, load_act_norms(a.norms, model_linears(src->config())));
    opt.source_info["norms"] = a.norms;
  }
  if (!a.calib_text.empty()) {  // Wanda calibration: run the dense model (CPU engine) on the text
    SS_ASSIGN_OR_RETURN(std::string text, load_text_file(a.calib_text));
    SS_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::from_model_path(a.in));
    std::vector<int32_t> ids = tok.encode(text);
    if (a.calib_tokens < 1) return invalid_argument("--calib-tokens must be >= 1");
    if (static_cast<int64_t>(ids.size()) > a.calib_tokens)
      ids.resize(static_cast<size_t>(a.calib_tokens));
    auto be = make_cpu_backend();
    SS_ASSIGN_OR_RETURN(std::unique_ptr<Model> m, Model::load(a.in, be.get()));
    SS_ASSIGN_OR_RETURN(opt.act_norms, calibrate_act_norms(*m, ids, 512));
    opt.source_info["calib_text"] = a.calib_text;
    opt.source_info["calib_tokens"] = std::to_string(ids.size());
  }
  ConvertReport rep;
  SS_RETURN_IF_ERROR(convert_checkpoint(*src, opt, &rep));
  std::printf(
      "wrote %s: %s %s %s, %lld tensors (%lld linears), linears %.3f of dense, %.2f GB read in "
      "%.1f s (%.2f GB/s)\n",
      a.out.c_str(), opt.pattern.str().c_str(), prune_method_name(opt.prune),
      quant_mode_name(opt.quant), static_cast<long long>(rep.tensors),
      static_cast<long long>(rep.linears),
      rep.linear_dense_bytes ? static_cast<double>(rep.linear_sparse_bytes) / rep.linear_dense_bytes
                             : 0.0,
      rep.bytes_read / 1e9, rep.seconds,
      rep.seconds > 0 ? rep.bytes_read / 1e9 / rep.seconds : 0.0);
  if (!a.dense.empty()) std::printf("wrote %s: dense pruned HF checkpoint\n", a.dense.c_str());
  return Status::Ok();
}

CommandRegistrar reg(
    "", "convert", "prune (+quantize) an HF checkpoint into a SlideSparse checkpoint",
    [](CLI::App& sub) -> CommandFn {
      auto a = std::make_shared<ConvertArgs>();
      sub.add_option("input", a->in, "Hugging Face checkpoint directory")->required();
      sub.add_option("--out", a->out, "output directory")->required();
      sub.add_option("--pattern", a->pattern,
                     "n:m pattern, e.g. 2:4, 4:6, 6:8, 8:10 (default 6:8)");
      sub.add_option("--prune", a->prune, "magnitude | wanda (default magnitude)");
      sub.add_option("--quant", a->quant, "none | int8 | fp8 (default none)");
      sub.add_option("--calib-text", a->calib_text,
                     "Wanda: calibrate on this text with the dense model (CPU engine)");
      sub.add_option("--calib-tokens", a->calib_tokens, "Wanda calibration tokens (default 2048)")
          ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
      sub.add_option("--norms", a->norms,
                     "Wanda activation norms: safetensors, F32 [K] '<linear>.weight.act_norm'");
      sub.add_option("--export-dense-pruned", a->dense,
                     "also write a plain HF checkpoint with the zeros in place")
          ->check(kNonEmpty);
      sub.add_flag("--force", a->force, "replace existing output directories");
      sub.add_option("--threads", a->threads, "threads (default: all cores)")
          ->check(CLI::Range(1, 4096));
      sub.add_option("--max-shard-size", a->shard, "shard when larger, e.g. 4GB (default 4GiB)")
          ->check(kNonEmpty);
      sub.add_flag("--progress", a->progress, "progress lines on stderr even when not a terminal");
      sub.add_flag("--quiet", a->quiet, "no progress line");
      return [a]() { return run_convert(*a); };
    });

}  // namespace
}  // namespace slidesparse::cli
