// `slidesparse bench e2e`: end-to-end prefill and decode throughput of the CUDA engine (CudaModel)
// for dense and n:m models of each precision, with speedups vs the dense model of the same
// precision measured in the same run. One model is loaded at a time and freed before the next.
//   prefill: M tokens = S sequences x L (L = --prompt-len, or one sequence of M tokens when
//            M < L), one output token; tokens/s = M / TTFT.
//   decode:  B sequences of --decode-prompt tokens, then --gen-len greedy decode steps (ids picked
//            on the device); TPOT = decode time / gen-len, tokens/s = B * gen-len / decode time.
// Timing: host clock around each call with the engine synchronized (prefill and decode return the
// greedy ids picked on the device to the host), warm-up runs, median of --reps.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli.h"
#include "cli_lists.h"
#include "core/fs_util.h"
#include "slidesparse/checkpoint.h"
#include "slidesparse/linear.h"
#include "slidesparse/model_config.h"
#include "slidesparse/pattern.h"
#include "slidesparse/quant.h"
#include "slidesparse/synth.h"
#ifdef SLIDESPARSE_WITH_CUDA
#include "cuda/gpu_monitor.h"
#include "slidesparse/cuda_model.h"
#endif

namespace slidesparse::cli {
namespace {

constexpr int64_t kMaxM = 65536;
constexpr int64_t kMaxBatch = 4096;

struct E2eArgs {
  std::string model, arch, patterns = "dense,2:4,6:8", quants = "int8,fp8,none";
  std::string linear_mode = "sparse", mode = "both", act = "bf16", tuning, out;
  std::string gemm_backend = "best";
  std::string Ms = "512,1024,2048,4096,8192,16384,32768,65536";
  std::string batches = "1,2,4,8,16,32,64,128,256,512";
  int64_t prompt_len = 1024, decode_prompt = 16, gen_len = 128;
  int reps = 5, warmup = 1, rounds = 1;
  uint64_t seed = 0;
  bool profile = false;
};

// One model of the run: a precision and a pattern ("dense" or n:m).
struct Variant {
  QuantMode quant = QuantMode::kNone;
  std::string pattern = "dense";
};

// Everything checked before any GPU work: a bad flag is one error line and exit code 2.
struct E2ePlan {
  std::vector<Variant> variants;  // grouped by precision, dense first within a precision
  std::vector<int64_t> Ms, batches;
  bool prefill = false, decode = false;
  LinearMode linear_mode = LinearMode::kSparse;
  DType act = DType::kBF16;
  std::string model_name;  // arch or checkpoint directory name
  bool slidesparse_ckpt = false;
};

Expected<E2ePlan> make_plan(const E2eArgs& a) {
  E2ePlan p;
  if (a.model.empty() == a.arch.empty())
    return invalid_argument("give exactly one of MODEL (a checkpoint directory) or --arch");
  if (!a.arch.empty()) {
    SS_RETURN_IF_ERROR(synth_arch_config(a.arch).status());
    p.model_name = a.arch;
  } else {
    SS_RETURN_IF_ERROR(model_config_load(a.model + "/config.json").status());
    std::string m = a.model;
    while (m.size() > 1 && m.back() == '/') m.pop_back();
    p.model_name = m.substr(m.find_last_of('/') == std::string::npos ? 0 : m.find_last_of('/') + 1);
    p.slidesparse_ckpt = core::path_exists(a.model + "/slidesparse_config.json");
  }
  if (a.act == "bf16")
    p.act = DType::kBF16;
  else if (a.act == "fp16")
    p.act = DType::kF16;
  else
    return invalid_argument("--act '" + a.act + "': expected bf16 or fp16");
  if (a.linear_mode == "sparse")
    p.linear_mode = LinearMode::kSparse;
  else if (a.linear_mode == "auto")
    p.linear_mode = LinearMode::kAuto;
  else if (a.linear_mode == "dense")
    p.linear_mode = LinearMode::kDense;
  else
    return invalid_argument("--linear-mode '" + a.linear_mode +
                            "': expected sparse, auto or dense");
  if (a.gemm_backend != "best" && a.gemm_backend != "library" && a.gemm_backend != "cutlass" &&
      a.gemm_backend != "default")
    return invalid_argument("--gemm-backend '" + a.gemm_backend +
                            "': expected best, library, cutlass or default");
  if (a.mode == "prefill" || a.mode == "both") p.prefill = true;
  if (a.mode == "decode" || a.mode == "both") p.decode = true;
  if (!p.prefill && !p.decode)
    return invalid_argument("--mode '" + a.mode + "': expected prefill, decode or both");

  std::vector<std::string> pats = split_list(a.patterns), quants = split_list(a.quants);
  if (pats.empty()) return invalid_argument("--pattern: empty list");
  if (quants.empty()) return invalid_argument("--quant: empty list");
  std::vector<std::string> nm;  // validated n:m patterns, in the order given
  bool dense = false;
  for (const auto& s : pats) {
    if (s == "dense") {
      dense = true;
      continue;
    }
    auto pt = Pattern::parse(s);
    if (!pt.ok()) return invalid_argument("--pattern '" + s + "': " + pt.status().message());
    if (std::find(nm.begin(), nm.end(), pt->str()) == nm.end()) nm.push_back(pt->str());
  }
  std::vector<QuantMode> qs;
  for (const auto& s : quants) {
    auto q = quant_mode_parse(s);
    if (!q.ok()) return invalid_argument("--quant '" + s + "': expected int8, fp8 or none");
    if (std::find(qs.begin(), qs.end(), *q) == qs.end()) qs.push_back(*q);
  }
  if (p.slidesparse_ckpt) {
    // A converted checkpoint fixes pattern and precision; "dense" runs its weights through the
    // dense GEMM (zeros in place) as the same-precision baseline.
    SS_ASSIGN_OR_RETURN(Checkpoint ck, Checkpoint::open(a.model));
    const std::string cp = ck.pattern().str();
    for (const auto& s : nm)
      if (s != cp)
        return invalid_argument("--pattern '" + s + "': checkpoint '" + a.model + "' is " + cp);
    for (QuantMode q : qs)
      if (q != ck.quant())
        return invalid_argument("--quant '" + std::string(quant_mode_name(q)) + "': checkpoint '" +
                                a.model + "' is " + quant_mode_name(ck.quant()));
    if (dense) p.variants.push_back({ck.quant(), "dense"});
    p.variants.push_back({ck.quant(), cp});
  } else {
    for (QuantMode q : qs) {
      if (dense) p.variants.push_back({q, "dense"});
      for (const auto& s : nm) p.variants.push_back({q, s});
    }
  }

  if (a.prompt_len < 1 || a.prompt_len > kMaxM)
    return invalid_argument("--prompt-len " + std::to_string(a.prompt_len) + ": expected 1.." +
                            std::to_string(kMaxM));
  if (a.decode_prompt < 1 || a.decode_prompt > 4096)
    return invalid_argument("--decode-prompt " + std::to_string(a.decode_prompt) +
                            ": expected 1..4096");
  if (a.gen_len < 1 || a.gen_len > 65536)
    return invalid_argument("--gen-len " + std::to_string(a.gen_len) + ": expected 1..65536");
  if (a.reps < 1 || a.reps > 1000)
    return invalid_argument("--reps " + std::to_string(a.reps) + ": expected 1..1000");
  if (a.rounds < 1 || a.rounds > 20)
    return invalid_argument("--rounds " + std::to_string(a.rounds) + ": expected 1..20");
  if (a.warmup < 0 || a.warmup > 100)
    return invalid_argument("--warmup " + std::to_string(a.warmup) + ": expected 0..100");
  if (p.prefill) {
    SS_RETURN_IF_ERROR(parse_ints("--M", a.Ms, &p.Ms));
    if (p.Ms.empty()) return invalid_argument("--M: empty list");
    for (int64_t M : p.Ms) {
      if (M < 1 || M > kMaxM)
        return invalid_argument("--M " + std::to_string(M) + ": expected 1.." +
                                std::to_string(kMaxM));
      if (M > a.prompt_len && M % a.prompt_len != 0)
        return invalid_argument("--M " + std::to_string(M) + ": not a multiple of --prompt-len " +
                                std::to_string(a.prompt_len));
    }
  }
  if (p.decode) {
    SS_RETURN_IF_ERROR(parse_ints("--batch", a.batches, &p.batches));
    if (p.batches.empty()) return invalid_argument("--batch: empty list");
    for (int64_t B : p.batches)
      if (B < 1 || B > kMaxBatch)
        return invalid_argument("--batch " + std::to_string(B) + ": expected 1.." +
                                std::to_string(kMaxBatch));
    if (*std::max_element(p.batches.begin(), p.batches.end()) * a.decode_prompt > kMaxM)
      return invalid_argument("--batch x --decode-prompt: more than " + std::to_string(kMaxM) +
                              " prompt tokens in one prefill");
  }
  return p;
}

#ifdef SLIDESPARSE_WITH_CUDA

std::string precision_of(QuantMode q, DType act) {
  if (q == QuantMode::kInt8) return "int8";
  if (q == QuantMode::kFp8) return "fp8";
  return act == DType::kF16 ? "fp16" : "bf16";
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool is_gemm_op(const std::string& op) {
  return op == "qkv" || op == "o" || op == "gate_up" || op == "down" || op == "lm_head";
}

// Per-op ms of one step (profile totals / steps) and the non-GEMM fraction of their sum.
void add_profile(const CudaModel& m, double steps, nlohmann::json* rec) {
  nlohmann::json ops = nlohmann::json::object();
  double total = 0, non_gemm = 0;
  for (const OpTime& t : m.profile()) {
    const double ms = t.ms / steps;
    ops[t.op] = ms;
    total += ms;
    if (!is_gemm_op(t.op)) non_gemm += ms;
  }
  (*rec)["profile_ms"] = ops;
  (*rec)["profile_total_ms"] = total;
  (*rec)["non_gemm_frac"] = total > 0 ? nlohmann::json(non_gemm / total) : nlohmann::json();
}

class E2eRunner {
 public:
  E2eRunner(const E2eArgs& a, const E2ePlan& p) : a_(a), p_(p), rng_(a.seed + 12345) {}

  // The first model's error ends the run (bad input, no GPU, too large: one error line). After
  // that a failing model is reported on stderr and the run goes on with the next one (a long
  // sweep keeps its other models); the exit status then says how many failed.
  Status run() {
    SS_ASSIGN_OR_RETURN(backend_, gemm_backend_parse(a_.gemm_backend));
    int runs = 0, failed = 0;
    Status first_error = Status::Ok();
    // --rounds: the whole list again, in the same order (drift between models shows up as a
    // difference between rounds; speedups compare models of the same round).
    for (round_ = 0; round_ < a_.rounds; ++round_) {
      for (const Variant& v : p_.variants) {
        for (bool prefill : {true, false}) {
          if (prefill ? !p_.prefill : !p_.decode) continue;
          Status st = run_variant(v, prefill);
          ++runs;
          if (st.ok()) continue;
          if (records_.empty() && failed == 0) return st;
          std::fprintf(stderr, "# %s %s %s %s: error: %s\n", p_.model_name.c_str(),
                       precision_of(v.quant, p_.act).c_str(), v.pattern.c_str(),
                       prefill ? "prefill" : "decode", st.message().c_str());
          if (failed++ == 0) first_error = st;
        }
      }
    }
    if (failed > 0)
      return Status(first_error.code(), std::to_string(failed) + " of " + std::to_string(runs) +
                                            " model runs failed (first: " + first_error.message() +
                                            ")");
    return Status::Ok();
  }

 private:
  Expected<std::unique_ptr<CudaModel>> load(const Variant& v, bool prefill) {
    CudaModelOptions o;
    o.act_dtype = p_.act;
    o.mode = v.pattern == "dense" && p_.slidesparse_ckpt ? LinearMode::kDense : p_.linear_mode;
    o.tuning_path = a_.tuning;
    o.profile = a_.profile;
    o.gemm_backend = backend_;
    if (prefill) {
      int64_t S = 1, Mmax = 1;
      for (int64_t M : p_.Ms) {
        S = std::max(S, M > a_.prompt_len ? M / a_.prompt_len : 1);
        Mmax = std::max(Mmax, M);
      }
      o.max_batch = S;
      o.max_ctx = std::min(a_.prompt_len, Mmax);
      o.max_step_tokens = Mmax;
    } else {
      const int64_t B = *std::max_element(p_.batches.begin(), p_.batches.end());
      o.max_batch = B;
      o.max_ctx = a_.decode_prompt + a_.gen_len;
      o.max_step_tokens = B * a_.decode_prompt;
    }
    if (!a_.arch.empty()) {
      SyntheticModelSpec s;
      s.arch = a_.arch;
      s.pattern = v.pattern;
      s.quant = v.quant;
      s.seed = a_.seed;
      return CudaModel::synthetic(s, o);
    }
    if (!p_.slidesparse_ckpt) {
      if (v.pattern == "dense") {
        o.dense_quant = v.quant;
      } else {
        o.sparsify.enabled = true;
        SS_ASSIGN_OR_RETURN(o.sparsify.pattern, Pattern::parse(v.pattern));
        o.sparsify.quant = v.quant;
      }
    }
    return CudaModel::load(a_.model, o);
  }

  std::vector<int32_t> random_tokens(int64_t n, int64_t vocab) {
    std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(vocab - 1));
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = d(rng_);
    return t;
  }

  // What --gemm-backend became for this model's int8 / fp8 linears on this build and GPU
  // (effective_gemm_backend): "best" (CUTLASS from M = kCutlassMinM, the library below),
  // "cutlass" or "library"; bf16 / fp16 linears always run the library.
  std::string resolved_backend(const Variant& v) const {
    const bool sparse = v.pattern != "dense" && p_.linear_mode != LinearMode::kDense;
    auto e = effective_gemm_backend(backend_, sparse, v.quant, p_.act);
    return e.ok() ? gemm_backend_name(*e) : "?";
  }

  nlohmann::json base_record(const Variant& v, const CudaModel& m, const char* mode) {
    return {{"model", p_.model_name},
            {"dtype", precision_of(v.quant, p_.act)},
            {"pattern", v.pattern},
            {"mode", mode},
            {"linear_mode", v.pattern == "dense" ? "dense" : linear_mode_name(p_.linear_mode)},
            {"gemm_backend", a_.gemm_backend},
            {"gemm_backend_resolved", resolved_backend(v)},
            {"description", m.description()},
            {"weight_gb", static_cast<double>(m.weight_bytes()) / 1e9},
            {"reps", a_.reps},
            {"round", round_},
            {"profiled", a_.profile}};
  }

  Status run_variant(const Variant& v, bool prefill) {
    const char* mode = prefill ? "prefill" : "decode";
    const double t0 = now_ms();
    SS_ASSIGN_OR_RETURN(std::unique_ptr<CudaModel> m, load(v, prefill));
    std::printf("# %s %s %s: loaded %s (%.2f GB weights) in %.1f s\n", p_.model_name.c_str(),
                precision_of(v.quant, p_.act).c_str(), v.pattern.c_str(), m->description().c_str(),
                static_cast<double>(m->weight_bytes()) / 1e9, (now_ms() - t0) / 1e3);
    if (!m->tuning_note().empty()) std::printf("# %s\n", m->tuning_note().c_str());
    std::fflush(stdout);
    const int64_t V = m->config().vocab_size;
    std::vector<nlohmann::json> recs;
    if (prefill) {
      for (int64_t M : p_.Ms) {
        const int64_t L = std::min(M, a_.prompt_len), S = M / L;
        const std::vector<int32_t> tok = random_tokens(S * L, V);
        std::vector<int32_t> first(static_cast<size_t>(S));  // greedy first token per sequence
        auto step = [&]() -> Expected<double> {
          const double s = now_ms();
          SS_RETURN_IF_ERROR(m->prefill(tok.data(), S, L, nullptr, first.data()));
          SS_RETURN_IF_ERROR(m->synchronize());
          return now_ms() - s;
        };
        for (int w = 0; w < a_.warmup; ++w) SS_RETURN_IF_ERROR(step().status());
        std::vector<double> t;
        mon_.start();
        for (int r = 0; r < a_.reps; ++r) {
          SS_ASSIGN_OR_RETURN(double ms, step());
          t.push_back(ms);
        }
        const cuda::GpuStats gs = mon_.stop();
        const double ttft = median(t);
        nlohmann::json rec = base_record(v, *m, mode);
        add_clocks(gs, &rec);
        rec["M"] = M;
        rec["batch"] = S;
        rec["prompt_len"] = L;
        rec["tokens_per_s"] = static_cast<double>(M) / (ttft / 1e3);
        rec["ttft_ms"] = ttft;
        rec["tpot_ms"] = nullptr;
        rec["ttft_ms_min"] = *std::min_element(t.begin(), t.end());
        rec["ttft_ms_max"] = *std::max_element(t.begin(), t.end());
        if (a_.profile) {
          m->reset_profile();
          SS_RETURN_IF_ERROR(step().status());
          add_profile(*m, 1.0, &rec);
        }
        recs.push_back(rec);
      }
    } else {
      for (int64_t B : p_.batches) {
        const std::vector<int32_t> prompt = random_tokens(B * a_.decode_prompt, V);
        std::vector<int32_t> cur(static_cast<size_t>(B)), next(static_cast<size_t>(B));
        // One generation: prefill (TTFT, first token), then gen_len decode steps.
        auto generate = [&](bool profile_decode) -> Expected<std::pair<double, double>> {
          double s = now_ms();
          SS_RETURN_IF_ERROR(m->prefill(prompt.data(), B, a_.decode_prompt, nullptr, cur.data()));
          SS_RETURN_IF_ERROR(m->synchronize());
          const double ttft = now_ms() - s;
          if (profile_decode) m->reset_profile();
          s = now_ms();
          for (int64_t g = 0; g < a_.gen_len; ++g) {
            SS_RETURN_IF_ERROR(m->decode(cur.data(), B, nullptr, next.data()));
            std::swap(cur, next);
          }
          SS_RETURN_IF_ERROR(m->synchronize());
          return std::make_pair(ttft, now_ms() - s);
        };
        for (int w = 0; w < a_.warmup; ++w) SS_RETURN_IF_ERROR(generate(false).status());
        std::vector<double> tt, td;
        mon_.start();
        for (int r = 0; r < a_.reps; ++r) {
          SS_ASSIGN_OR_RETURN(auto t, generate(false));
          tt.push_back(t.first);
          td.push_back(t.second);
        }
        const cuda::GpuStats gs = mon_.stop();
        const double dec = median(td), tpot = dec / static_cast<double>(a_.gen_len);
        nlohmann::json rec = base_record(v, *m, mode);
        add_clocks(gs, &rec);
        rec["M"] = B;
        rec["batch"] = B;
        rec["prompt_len"] = a_.decode_prompt;
        rec["gen_len"] = a_.gen_len;
        rec["tokens_per_s"] = static_cast<double>(B * a_.gen_len) / (dec / 1e3);
        rec["ttft_ms"] = median(tt);
        rec["tpot_ms"] = tpot;
        rec["decode_ms_min"] = *std::min_element(td.begin(), td.end());
        rec["decode_ms_max"] = *std::max_element(td.begin(), td.end());
        if (a_.profile) {
          SS_RETURN_IF_ERROR(generate(true).status());
          add_profile(*m, static_cast<double>(a_.gen_len), &rec);
        }
        recs.push_back(rec);
      }
    }
    const double peak = static_cast<double>(m->peak_memory_bytes()) / 1e9;
    m.reset();  // free the GPU before the next model
    for (auto& rec : recs) {
      rec["peak_mem_gb"] = peak;
      const std::string key = rec["dtype"].get<std::string>() + "|" + mode + "|" +
                              std::to_string(rec["M"].get<int64_t>()) + "|" +
                              std::to_string(round_);
      if (v.pattern == "dense") dense_tps_[key] = rec["tokens_per_s"].get<double>();
      auto it = dense_tps_.find(key);
      rec["speedup"] = it != dense_tps_.end()
                           ? nlohmann::json(rec["tokens_per_s"].get<double>() / it->second)
                           : nlohmann::json();
      print(rec);
      records_.push_back(rec);
    }
    return write();
  }

  // SM clock and board power sampled (NVML) while the timed repeats ran; null when unavailable.
  static void add_clocks(const cuda::GpuStats& g, nlohmann::json* rec) {
    const bool ok = g.samples > 0;
    (*rec)["sm_mhz"] = ok ? nlohmann::json(g.sm_mhz_median) : nlohmann::json();
    (*rec)["sm_mhz_min"] = ok ? nlohmann::json(g.sm_mhz_min) : nlohmann::json();
    (*rec)["power_w"] = ok ? nlohmann::json(g.power_w_mean) : nlohmann::json();
    (*rec)["power_capped_frac"] = ok ? nlohmann::json(g.power_capped_frac) : nlohmann::json();
  }

  static void print(const nlohmann::json& r) {
    auto num = [&](const char* k, const char* fmt) {
      char b[64];
      if (!r.contains(k) || r[k].is_null()) return std::string("-");
      std::snprintf(b, sizeof(b), fmt, r[k].get<double>());
      return std::string(b);
    };
    std::printf(
        "%-12s %-5s %-6s %-7s M=%-6lld B=%-4lld %12s tok/s  TTFT %10s ms  TPOT %8s ms  "
        "peak %6s GB  speedup %6s  %s MHz %s W%s\n",
        r["model"].get<std::string>().c_str(), r["dtype"].get<std::string>().c_str(),
        r["pattern"].get<std::string>().c_str(), r["mode"].get<std::string>().c_str(),
        static_cast<long long>(r["M"].get<int64_t>()),
        static_cast<long long>(r["batch"].get<int64_t>()), num("tokens_per_s", "%.1f").c_str(),
        num("ttft_ms", "%.3f").c_str(), num("tpot_ms", "%.3f").c_str(),
        num("peak_mem_gb", "%.2f").c_str(), num("speedup", "%.3f").c_str(),
        num("sm_mhz", "%.0f").c_str(), num("power_w", "%.0f").c_str(),
        r.contains("non_gemm_frac") && !r["non_gemm_frac"].is_null()
            ? ("  non-GEMM " + num("non_gemm_frac", "%.3f")).c_str()
            : "");
    std::fflush(stdout);
  }

  // e2e.json + e2e.csv with every record so far (rewritten after each model, so an interrupted
  // run keeps the models it finished).
  Status write() const {
    const std::string j = a_.out + "/e2e.json", c = a_.out + "/e2e.csv";
    {
      std::ofstream f(j + ".tmp");
      f << nlohmann::json(records_).dump(1) << "\n";
      if (!f) return io_error("cannot write '" + j + ".tmp'");
    }
    // clang-format off
    static const char* kCols[] = {
        "model", "dtype", "pattern", "mode", "M", "batch", "prompt_len", "gen_len", "tokens_per_s",
        "ttft_ms", "tpot_ms", "peak_mem_gb", "speedup", "non_gemm_frac", "linear_mode", "reps",
        "round", "sm_mhz", "power_w", "gemm_backend", "gemm_backend_resolved"};
    // clang-format on
    std::string csv;
    for (const char* k : kCols) csv += std::string(csv.empty() ? "" : ",") + k;
    csv += "\n";
    for (const auto& r : records_) {
      bool first = true;
      for (const char* k : kCols) {
        if (!first) csv += ",";
        first = false;
        if (!r.contains(k) || r[k].is_null()) continue;
        csv += r[k].is_string() ? r[k].get<std::string>() : r[k].dump();
      }
      csv += "\n";
    }
    {
      std::ofstream f(c + ".tmp");
      f << csv;
      if (!f) return io_error("cannot write '" + c + ".tmp'");
    }
    if (std::rename((j + ".tmp").c_str(), j.c_str()) != 0 ||
        std::rename((c + ".tmp").c_str(), c.c_str()) != 0)
      return io_error("cannot write '" + j + "' / '" + c + "'");
    return Status::Ok();
  }

  const E2eArgs& a_;
  const E2ePlan& p_;
  GemmBackend backend_ = GemmBackend::kBest;  // --gemm-backend, parsed once in run()
  std::mt19937 rng_;
  std::map<std::string, double> dense_tps_;  // "dtype|mode|M|round" -> dense model's tokens/s
  int round_ = 0;
  cuda::GpuMonitor mon_;
  std::vector<nlohmann::json> records_;
};

#endif  // SLIDESPARSE_WITH_CUDA

CommandRegistrar reg_bench_e2e(
    "bench", "e2e",
    "End-to-end prefill / decode tokens/s, TTFT, TPOT and peak memory of the CUDA engine: dense vs "
    "n:m models of each precision",
    [](CLI::App& sub) -> CommandFn {
      auto a = std::make_shared<E2eArgs>();
      sub.add_option("model", a->model,
                     "SlideSparse or Hugging Face checkpoint directory (or use --arch)");
      sub.add_option("--arch", a->arch,
                     "synthetic weights of a synth architecture (no download): llama3.2-1b, "
                     "llama3.2-3b, qwen2.5-7b, qwen2.5-14b, tiny-llama, tiny-qwen2");
      sub.add_option("--pattern", a->patterns,
                     "comma list of dense and n:m patterns (default dense,2:4,6:8)");
      sub.add_option("--quant", a->quants,
                     "comma list of int8, fp8, none (none = W16A16 in the --act dtype; default "
                     "int8,fp8,none)");
      sub.add_option("--linear-mode", a->linear_mode,
                     "n:m linears: sparse (default), auto (per M from --tuning) or dense (the "
                     "pruned weights through the dense GEMM)");
      sub.add_option("--mode", a->mode, "prefill, decode or both (default)");
      sub.add_option("--M", a->Ms,
                     "prefill: comma list of tokens per step, 1..65536 (S = M / prompt-len "
                     "sequences, or one sequence of M tokens when M < prompt-len)");
      sub.add_option("--prompt-len", a->prompt_len, "prefill: tokens per sequence (default 1024)");
      sub.add_option("--batch", a->batches,
                     "decode: comma list of batch sizes (default 1,2,4,...,512)");
      sub.add_option("--decode-prompt", a->decode_prompt,
                     "decode: prompt tokens per sequence (default 16)");
      sub.add_option("--gen-len", a->gen_len, "decode: generated tokens (default 128)");
      sub.add_option("--act", a->act, "activation dtype: bf16 (default) or fp16");
      sub.add_option("--reps", a->reps, "timed repeats, median reported (default 5)");
      sub.add_option("--warmup", a->warmup, "untimed runs first (default 1)");
      sub.add_option("--rounds", a->rounds,
                     "run the whole model list this many times, interleaved (default 1; speedups "
                     "compare models of the same round)");
      sub.add_option("--seed", a->seed, "weights and token ids seed (default 0)")->check(kDigits);
      sub.add_option("--tuning", a->tuning, "tuning JSON from `slidesparse tune`");
      sub.add_option("--gemm-backend", a->gemm_backend,
                     "int8/fp8 GEMMs: best (default: cuBLASLt/cuSPARSELt below M = 512, CUTLASS "
                     "with the fused epilogue from 512, where built for sm_90), library, cutlass, "
                     "or default (SLIDESPARSE_*_BACKEND)");
      sub.add_flag("--profile", a->profile,
                   "per-op time breakdown and GEMM vs non-GEMM fraction (models loaded in profile "
                   "mode: decode then runs without CUDA graphs)");
      sub.add_option("--out", a->out, "output directory for e2e.json and e2e.csv")->required();
      return [a]() -> Status {
        SS_ASSIGN_OR_RETURN(E2ePlan plan, make_plan(*a));
        if (a->out.empty()) return invalid_argument("--out: empty path");
        const std::string parent = core::path_dirname(a->out);
        if (!core::is_dir(parent))
          return not_found("--out '" + a->out + "': parent directory '" + parent +
                           "' does not exist");
#ifndef SLIDESPARSE_WITH_CUDA
        (void)plan;
        return unsupported("bench e2e needs the CUDA backend (this build has none)");
#else
        // The directory is made here (parent must exist); results go in after each model, so a
        // run cut off keeps what it measured. A run that fails before any result removes a
        // directory it made.
        const bool made = !core::path_exists(a->out);
        std::error_code ec;
        std::filesystem::create_directory(a->out, ec);
        if (ec || !core::is_dir(a->out))
          return io_error("--out '" + a->out + "': cannot create the directory");
        E2eRunner r(*a, plan);
        if (Status s = r.run(); !s.ok()) {
          if (made && std::filesystem::is_empty(a->out, ec)) std::filesystem::remove(a->out, ec);
          return s;
        }
        std::printf("# wrote %s/e2e.json and e2e.csv (plot: scripts/plot_e2e.py %s)\n",
                    a->out.c_str(), a->out.c_str());
        return Status::Ok();
#endif
      };
    });

}  // namespace
}  // namespace slidesparse::cli
