// Kernel benchmark and tuner. Weights are synthetic but valid n:m tensors (random masks with
// popcount n, random nonzero codes), activations random bf16/fp16 in [-1, 1). Every sparse layer
// is validated against a dense cuBLASLt layer holding the same weights before it is timed (int8:
// bit-exact outputs; fp8/bf16/fp16: normalized error). Timing: warm-up, cold L2 (a 256 MiB
// memset between runs), median of `reps` CUDA-event measurements. With --backend cutlass the
// CUTLASS sm90a layers (sparse, and dense as the fused-epilogue baseline) are measured in the same
// process, right after the library ones; fused_us = forward_prepared (GEMM + dequant + bias, no
// prologue): one kernel for CUTLASS, GEMM + epilogue kernel for the libraries.
#include "cuda/kernel_bench.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "cuda/cuda_check.h"
#include "cuda/gpu_monitor.h"
#include "cuda/kernels/fill_random.cuh"
#include "slidesparse/linear.h"

namespace slidesparse::cuda {
namespace {

struct LayerShape {
  std::string model, layer;
  int64_t N, K;
};

const std::vector<LayerShape>& model_table() {
  static const std::vector<LayerShape> t = {
      {"llama3.2-1b", "qkv", 3072, 2048},      {"llama3.2-1b", "o", 2048, 2048},
      {"llama3.2-1b", "gate_up", 16384, 2048}, {"llama3.2-1b", "down", 2048, 8192},
      {"llama3.2-3b", "qkv", 5120, 3072},      {"llama3.2-3b", "o", 3072, 3072},
      {"llama3.2-3b", "gate_up", 16384, 3072}, {"llama3.2-3b", "down", 3072, 8192},
      {"qwen2.5-7b", "qkv", 4608, 3584},       {"qwen2.5-7b", "o", 3584, 3584},
      {"qwen2.5-7b", "gate_up", 37888, 3584},  {"qwen2.5-7b", "down", 3584, 18944},
      {"qwen2.5-14b", "qkv", 7168, 5120},      {"qwen2.5-14b", "o", 5120, 5120},
      {"qwen2.5-14b", "gate_up", 27648, 5120}, {"qwen2.5-14b", "down", 5120, 13824},
  };
  return t;
}

Expected<std::vector<LayerShape>> shapes_for(const std::vector<std::string>& models,
                                             const std::vector<int64_t>& square) {
  std::vector<LayerShape> out;
  for (const auto& m : models) {
    bool found = false;
    for (const auto& s : model_table())
      if (m == "all" || s.model == m) {
        out.push_back(s);
        found = true;
      }
    if (!found)
      return invalid_argument("--model '" + m +
                              "': expected llama3.2-1b, llama3.2-3b, qwen2.5-7b, qwen2.5-14b "
                              "or all");
  }
  for (int64_t s : square) {
    if (s <= 0) return invalid_argument("--square: sizes must be positive");
    out.push_back({"square", "square" + std::to_string(s), s, s});
  }
  if (out.empty()) return invalid_argument("no shapes: give --model and/or --square");
  return out;
}

struct Precision {
  std::string name;
  DType act;
  QuantMode q;
};

Expected<Pattern> parse_pattern_flag(const std::string& s) {
  auto p = Pattern::parse(s);
  if (!p.ok()) return invalid_argument("--pattern '" + s + "': " + p.status().message());
  return *p;
}

Expected<Precision> parse_precision(const std::string& s) {
  if (s == "bf16") return Precision{s, DType::kBF16, QuantMode::kNone};
  if (s == "fp16") return Precision{s, DType::kF16, QuantMode::kNone};
  if (s == "int8") return Precision{s, DType::kBF16, QuantMode::kInt8};
  if (s == "fp8") return Precision{s, DType::kBF16, QuantMode::kFp8};
  return invalid_argument("--dtype '" + s + "': expected bf16, fp16, int8 or fp8");
}

// A valid n:m tensor with random masks (popcount n) and random nonzero values; zero at K-padding.
NmTensor synth_nm(Pattern p, int64_t N, int64_t K, const Precision& pr, uint64_t seed) {
  NmTensor t;
  t.pattern = p;
  t.N = N;
  t.K = K;
  t.value_dtype = pr.q == QuantMode::kInt8  ? DType::kI8
                  : pr.q == QuantMode::kFp8 ? DType::kF8E4M3
                                            : pr.act;
  std::vector<uint16_t> valid;
  for (uint32_t mask = 0; mask < (1u << p.m); ++mask)
    if (__builtin_popcount(mask) == p.n) valid.push_back(static_cast<uint16_t>(mask));
  const int64_t blocks = t.blocks();
  const size_t es = dtype_size(t.value_dtype);
  t.masks.resize(static_cast<size_t>(N * blocks));
  t.values.resize(static_cast<size_t>(N * blocks * p.n) * es);
  std::mt19937_64 rng(seed);
  // Small tables of nonzero codes, indexed by random bits.
  uint16_t codes[256];
  for (int i = 0; i < 256; ++i) {
    float v = (static_cast<float>(i % 127) + 1.0f) / 128.0f * ((i & 128) ? -1.0f : 1.0f);
    if (t.value_dtype == DType::kI8)
      codes[i] = static_cast<uint8_t>(static_cast<int8_t>((i % 127 + 1) * ((i & 128) ? -1 : 1)));
    else if (t.value_dtype == DType::kF8E4M3)
      codes[i] = float_to_e4m3(v * 100.0f);
    else if (t.value_dtype == DType::kF16)
      codes[i] = float_to_fp16(v);
    else
      codes[i] = float_to_bf16(v);
  }
  uint64_t bits = 0;
  int avail = 0;
  auto next8 = [&]() {
    if (avail == 0) {
      bits = rng();
      avail = 8;
    }
    uint8_t r = bits & 0xff;
    bits >>= 8;
    --avail;
    return r;
  };
  for (int64_t r = 0; r < N; ++r)
    for (int64_t b = 0; b < blocks; ++b) {
      uint16_t mask = valid[rng() % valid.size()];
      t.masks[r * blocks + b] = mask;
      int idx = 0;
      for (int k = 0; k < p.m; ++k) {
        if (!(mask >> k & 1)) continue;
        uint16_t c = b * p.m + k < K ? codes[next8()] : 0;
        size_t off = static_cast<size_t>((r * blocks + b) * p.n + idx++) * es;
        if (es == 1)
          t.values[off] = static_cast<uint8_t>(c);
        else
          std::memcpy(&t.values[off], &c, 2);
      }
    }
  if (pr.q != QuantMode::kNone) {
    t.scales.resize(N);
    for (int64_t r = 0; r < N; ++r) t.scales[r] = 1e-3f * (1.0f + (rng() % 1000) / 1000.0f);
  }
  return t;
}

class Timer {
 public:
  Status init(int reps) {
    SS_RETURN_IF_ERROR(flush_.reserve(256u << 20));
    ev_.resize(2 * reps);
    for (auto& e : ev_) SS_CUDA_TRY(cudaEventCreate(&e));
    return Status::Ok();
  }
  ~Timer() {
    for (auto& e : ev_)
      if (e) cudaEventDestroy(e);
  }
  // Median of reps timed runs (microseconds), cold L2 before each. SM clock and power are sampled
  // (NVML) while the timed runs execute: last_stats().
  Expected<double> median_us(const std::function<Status()>& op, int reps) {
    for (int i = 0; i < 2; ++i) SS_RETURN_IF_ERROR(op());
    SS_CUDA_TRY(cudaDeviceSynchronize());
    mon_.start();
    for (int r = 0; r < reps; ++r) {
      SS_CUDA_TRY(cudaMemsetAsync(flush_.get(), r & 0xff, flush_.bytes(), nullptr));
      SS_CUDA_TRY(cudaEventRecord(ev_[2 * r], nullptr));
      SS_RETURN_IF_ERROR(op());
      SS_CUDA_TRY(cudaEventRecord(ev_[2 * r + 1], nullptr));
    }
    cudaError_t sync = cudaDeviceSynchronize();
    last_ = mon_.stop();
    SS_CUDA_TRY(sync);
    std::vector<double> t(reps);
    for (int r = 0; r < reps; ++r) {
      float ms = 0;
      SS_CUDA_TRY(cudaEventElapsedTime(&ms, ev_[2 * r], ev_[2 * r + 1]));
      t[r] = ms * 1000.0;
    }
    std::sort(t.begin(), t.end());
    return reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
  }
  const GpuStats& last_stats() const { return last_; }
  const GpuMonitor& monitor() const { return mon_; }

 private:
  DeviceBuffer flush_;
  std::vector<cudaEvent_t> ev_;
  GpuMonitor mon_;
  GpuStats last_;
};

// Sparse vs dense outputs on the same weights (first `rows` tokens). int8: must be bit-exact;
// others: normalized max error (relative to the max |y|) below 2e-2 (fp8) / 1e-2 (16-bit).
Expected<std::string> validate(GpuLinear& sparse, const NmTensor& w, const Precision& pr,
                               const void* x, int64_t rows) {
  LinearConfig cfg;
  cfg.act_dtype = pr.act;
  cfg.dense_backend = GemmBackend::kLibrary;  // the reference is cuBLASLt
  SS_ASSIGN_OR_RETURN(auto dense, make_dense_linear(w, nullptr, cfg));
  DeviceBuffer ys, yd;
  size_t bytes = static_cast<size_t>(rows * w.N) * 2;
  SS_RETURN_IF_ERROR(ys.reserve(bytes));
  SS_RETURN_IF_ERROR(yd.reserve(bytes));
  SS_CUDA_TRY(cudaMemset(ys.get(), 0xff, bytes));  // poisoned
  SS_CUDA_TRY(cudaMemset(yd.get(), 0xff, bytes));
  SS_RETURN_IF_ERROR(sparse.forward(x, ys.get(), rows, nullptr));
  SS_RETURN_IF_ERROR(dense->forward(x, yd.get(), rows, nullptr));
  std::vector<uint16_t> hs(rows * w.N), hd(rows * w.N);
  SS_CUDA_TRY(cudaMemcpy(hs.data(), ys.get(), bytes, cudaMemcpyDeviceToHost));
  SS_CUDA_TRY(cudaMemcpy(hd.data(), yd.get(), bytes, cudaMemcpyDeviceToHost));
  auto f = [&](uint16_t v) { return pr.act == DType::kF16 ? fp16_to_float(v) : bf16_to_float(v); };
  double max_err = 0, max_ref = 0;
  int64_t mismatches = 0;
  for (size_t i = 0; i < hs.size(); ++i) {
    double a = f(hs[i]), b = f(hd[i]);
    if (std::isnan(a) || std::isnan(b)) return internal_error("validation: NaN in the output");
    max_err = std::max(max_err, std::fabs(a - b));
    max_ref = std::max(max_ref, std::fabs(b));
    mismatches += hs[i] != hd[i];
  }
  double nerr = max_ref > 0 ? max_err / max_ref : max_err;
  if (pr.q == QuantMode::kInt8 && mismatches)
    return internal_error("validation: int8 sparse != dense in " + std::to_string(mismatches) +
                          " outputs (" + sparse.describe() + ")");
  double tol = pr.q == QuantMode::kFp8 ? 2e-2 : 1e-2;
  if (nerr > tol)
    return internal_error("validation: normalized error " + std::to_string(nerr) + " > " +
                          std::to_string(tol) + " (" + sparse.describe() + ")");
  char buf[64];
  std::snprintf(buf, sizeof buf, "ok (nerr %.2e)", nerr);
  return std::string(buf);
}

double tflops(int64_t M, int64_t N, int64_t K, double us) {
  return us > 0 ? 2.0 * M * N * K / (us * 1e-6) / 1e12 : 0;
}

std::string gpu_name() {
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) return "unknown";
  return p.name;
}

}  // namespace

Status run_kernel_bench(const KernelBenchOptions& o) {
  if (o.out_dir.empty()) return invalid_argument("bench kernel: --out DIR is required");
  if (o.reps < 3) return invalid_argument("bench kernel: --reps must be >= 3");
  bool with_lib = false, with_cutlass = false;
  for (const auto& b : o.backends) {
    if (b == "cusparselt") {
      with_lib = true;
    } else if (b == "cutlass") {
      with_cutlass = true;
    } else {
      return invalid_argument("bench kernel: --backend '" + b +
                              "': expected cusparselt or cutlass");
    }
  }
  if (!with_lib && !with_cutlass) return invalid_argument("bench kernel: --backend is empty");
  SS_ASSIGN_OR_RETURN(auto shapes, shapes_for(o.models, o.square));
  std::vector<Precision> precs;
  for (const auto& s : o.precisions) {
    SS_ASSIGN_OR_RETURN(Precision p, parse_precision(s));
    precs.push_back(p);
  }
  std::vector<Pattern> pats;
  for (const auto& s : o.patterns) {
    SS_ASSIGN_OR_RETURN(Pattern p, parse_pattern_flag(s));
    pats.push_back(p);
  }
  for (int64_t M : o.Ms)
    if (M < 1 || M > 65536) return invalid_argument("bench kernel: --M values must be 1..65536");
  TuningTable tuning;
  bool have_tuning = false;
  if (!o.tuning.empty()) {
    SS_ASSIGN_OR_RETURN(tuning, TuningTable::load(o.tuning));
    have_tuning = true;
  }
  SS_RETURN_IF_ERROR(check_device());  // after the arguments: usage errors come first
  {
    std::error_code ec;
    std::filesystem::create_directories(o.out_dir, ec);
    if (ec) return io_error("bench kernel: cannot create '" + o.out_dir + "': " + ec.message());
  }
  Timer timer;
  SS_RETURN_IF_ERROR(timer.init(o.reps));
  if (!timer.monitor().available())
    std::printf("# clocks/power not sampled: %s\n", timer.monitor().why_unavailable().c_str());
  const int64_t M_max = *std::max_element(o.Ms.begin(), o.Ms.end());
  nlohmann::json records = nlohmann::json::array();
  std::string csv =
      "backend,dtype,pattern,model,layer,M,N,K,K_lifted,gemm_us,layer_us,tflops,prologue_us,"
      "fused_us,speedup_gemm,speedup_layer,speedup_fused,dense_best_candidate_us,alg,validated,"
      "gemm_sm_mhz,gemm_power_w,gemm_power_capped\n";
  std::printf("# GPU %s; cold L2, median of %d runs; times in us\n", gpu_name().c_str(), o.reps);
  std::printf("%-10s %-5s %-5s %-12s %-8s %6s %9s %9s %8s %7s %7s\n", "backend", "dtype", "pat",
              "model", "layer", "M", "gemm_us", "layer_us", "TFLOPS", "S_gemm", "S_layer");

  // Written after every shape x precision, so a run cut short keeps what it measured.
  auto write_results = [&]() -> Status {
    std::string jpath = o.out_dir + "/kernel.json";
    {
      std::ofstream f(jpath);
      if (!f) return io_error("bench kernel: cannot write '" + jpath + "'");
      f << records.dump(1) << "\n";
    }
    std::string out_csv = csv;
    for (const auto& r : records) {
      auto num = [&](const char* k) { return r[k].is_null() ? std::string() : r[k].dump(); };
      out_csv += r["backend"].get<std::string>() + "," + r["dtype"].get<std::string>() + "," +
                 r["pattern"].get<std::string>() + "," + r["model"].get<std::string>() + "," +
                 r["layer"].get<std::string>() + "," + num("M") + "," + num("N") + "," + num("K") +
                 "," + num("K_lifted") + "," + num("gemm_us") + "," + num("layer_us") + "," +
                 num("tflops") + "," + num("prologue_us") + "," + num("fused_us") + "," +
                 num("speedup_gemm") + "," + num("speedup_layer") + "," + num("speedup_fused") +
                 "," + num("dense_best_candidate_us") + "," + r["alg"].get<std::string>() + "," +
                 r["validated"].get<std::string>() + "," + num("gemm_sm_mhz") + "," +
                 num("gemm_power_w") + "," + num("gemm_power_capped") + "\n";
    }
    std::string cpath = o.out_dir + "/kernel.csv";
    std::ofstream fc(cpath);
    if (!fc) return io_error("bench kernel: cannot write '" + cpath + "'");
    fc << out_csv;
    return Status::Ok();
  };

  for (const auto& sh : shapes) {
    for (const auto& pr : precs) {
      LinearConfig cfg;
      cfg.act_dtype = pr.act;
      cfg.tuning = &tuning;  // bench-local copy: the dense baseline's best candidate goes in
      cfg.sparse_backend = cfg.dense_backend = GemmBackend::kLibrary;
      LinearConfig ccfg = cfg;  // CUTLASS layers (int8 / fp8 only)
      ccfg.sparse_backend = ccfg.dense_backend = GemmBackend::kCutlass;
      const bool cut_here = with_cutlass && pr.q != QuantMode::kNone;
      DeviceBuffer x;
      SS_RETURN_IF_ERROR(x.reserve(static_cast<size_t>(M_max * sh.K) * 2));
      SS_RETURN_IF_ERROR(kernels::launch_fill_random(pr.act, x.get(), M_max * sh.K, 1234, nullptr));
      DeviceBuffer y;
      SS_RETURN_IF_ERROR(y.reserve(static_cast<size_t>(M_max * sh.N) * 2));
      // All layers of this shape x precision are built first and then measured M by M, dense
      // and each pattern back to back: the GPU's clocks drift over minutes of heavy GEMMs (we saw
      // up to 18% between two measurements of the same kernel), so adjacent measurements keep
      // the ratios honest. The dense baseline uses the weights of the first pattern (dense speed
      // does not depend on the values).
      std::unique_ptr<GpuLinear> dense, cdense;
      std::string cdense_valid;
      {
        NmTensor w = synth_nm(pats.empty() ? Pattern{2, 4} : pats[0], sh.N, sh.K, pr, 7);
        SS_ASSIGN_OR_RETURN(dense, make_dense_linear(w, nullptr, cfg));
        if (cut_here) {
          SS_ASSIGN_OR_RETURN(cdense, make_dense_linear(w, nullptr, ccfg));
          SS_ASSIGN_OR_RETURN(cdense_valid, validate(*cdense, w, pr, x.get(), 64));
        }
      }
      struct SparseCase {
        Pattern p;
        std::string backend;
        std::unique_ptr<GpuLinear> l;
        std::string valid;
        int64_t Kl;
      };
      std::vector<SparseCase> sps;
      for (const auto& p : pats) {
        NmTensor w = synth_nm(p, sh.N, sh.K, pr, 7);
        for (int b = 0; b < 2; ++b) {
          if (b == 0 ? !with_lib : !cut_here) continue;
          SparseCase c;
          c.p = p;
          c.backend = b == 0 ? "cusparselt" : "cutlass";
          SS_ASSIGN_OR_RETURN(c.l, make_sparse_linear(w, nullptr, b == 0 ? cfg : ccfg));
          SS_ASSIGN_OR_RETURN(c.valid, validate(*c.l, w, pr, x.get(), 64));
          c.Kl = p.k_lifted_aligned(sh.K, b == 1 ? 64 : pr.q == QuantMode::kNone ? 16 : 32);
          sps.push_back(std::move(c));
        }
      }
      for (int64_t M : o.Ms) {
        SS_RETURN_IF_ERROR(dense->reserve(M));
        SS_RETURN_IF_ERROR(dense->run_prologue(x.get(), M, nullptr));
        // Honest baseline: time the top cuBLASLt heuristic candidates (GEMM only) and run the
        // dense layer with the best of them (and of the tuned choice).
        double best = 0;
        int best_i = -1;
        {
          const TuneEntry* tuned = tuning.find_nearest("cublaslt", pr.name, "dense", sh.N, sh.K, M);
          SS_ASSIGN_OR_RETURN(int ncand, dense->gemm_configs(M));
          std::vector<int> cands;
          for (int c = 0; c < std::min(ncand, o.dense_candidates); ++c) cands.push_back(c);
          if (tuned && tuned->algo_index >= o.dense_candidates) cands.push_back(tuned->algo_index);
          for (int c : cands) {
            TuneEntry e = dense->config(M, c, 1);
            auto t =
                timer.median_us([&] { return dense->run_gemm_config(M, &e, nullptr); }, o.reps);
            if (t.ok() && (best_i < 0 || *t < best)) {
              best = *t;
              best_i = c;
            }
          }
          TuneEntry keep = tuned ? *tuned : dense->config(M, best_i, 1);
          keep.M_bucket = TuningTable::bucket(M);
          keep.algo_index = best_i;
          tuning.put(keep);
        }
        GpuStats gs;  // clocks and power during the last GEMM-only measurement
        auto measure = [&](GpuLinear& l, double* gem, double* lay, double* pro,
                           double* fus) -> Status {
          SS_RETURN_IF_ERROR(l.reserve(M));
          SS_ASSIGN_OR_RETURN(
              *lay,
              timer.median_us([&] { return l.forward(x.get(), y.get(), M, nullptr); }, o.reps));
          SS_RETURN_IF_ERROR(l.run_prologue(x.get(), M, nullptr));
          SS_ASSIGN_OR_RETURN(*gem,
                              timer.median_us([&] { return l.run_gemm(M, nullptr); }, o.reps));
          gs = timer.last_stats();
          *fus = 0;
          if (pr.q != QuantMode::kNone) {
            SS_ASSIGN_OR_RETURN(
                *fus,
                timer.median_us([&] { return l.forward_prepared(y.get(), M, nullptr); }, o.reps));
          }
          SS_ASSIGN_OR_RETURN(
              *pro, timer.median_us([&] { return l.run_prologue(x.get(), M, nullptr); }, o.reps));
          return Status::Ok();
        };
        auto opt = [](double v) { return v > 0 ? nlohmann::json(v) : nlohmann::json(nullptr); };
        // CUTLASS layers: time each compiled configuration (GEMM only), keep the fastest in the
        // bench-local tuning table (the layers read it), and say which won.
        auto tune_cutlass = [&](GpuLinear& l) -> Expected<std::string> {
          SS_RETURN_IF_ERROR(l.reserve(M));
          SS_RETURN_IF_ERROR(l.run_prologue(x.get(), M, nullptr));
          SS_ASSIGN_OR_RETURN(int n, l.gemm_configs(M));
          double best_t = 0;
          int best_i = 0;
          std::string all;
          for (int i = 0; i < n; ++i) {
            TuneEntry e = l.config(M, i, 1);
            SS_ASSIGN_OR_RETURN(
                double t,
                timer.median_us([&] { return l.run_gemm_config(M, &e, nullptr); }, o.reps));
            char buf[32];
            std::snprintf(buf, sizeof buf, "%s%.1f", i ? "/" : "", t);
            all += buf;
            if (i == 0 || t < best_t) {
              best_t = t;
              best_i = i;
            }
          }
          TuneEntry e = l.config(M, best_i, 1);
          e.us = best_t;
          tuning.put(e);
          return "cfg" + std::to_string(best_i) + " (" + all + " us)";
        };
        double dg = 0, dl = 0, dp = 0, df = 0;
        SS_RETURN_IF_ERROR(measure(*dense, &dg, &dl, &dp, &df));
        // One record: speedups against the dense cuBLASLt layer measured above (dg, dl, df); the
        // clocks/power of the last GEMM-only measurement.
        auto record = [&](const std::string& backend, const std::string& pattern, int64_t k_lifted,
                          double g, double l, double p, double f, nlohmann::json best_cand,
                          const std::string& alg, const std::string& valid) {
          return nlohmann::json{
              {"backend", backend},
              {"dtype", pr.name},
              {"pattern", pattern},
              {"model", sh.model},
              {"layer", sh.layer},
              {"M", M},
              {"N", sh.N},
              {"K", sh.K},
              {"K_lifted", k_lifted},
              {"gemm_us", g},
              {"layer_us", l},
              {"tflops", tflops(M, sh.N, sh.K, g)},
              {"prologue_us", p},
              {"fused_us", opt(f)},
              {"speedup_gemm", dg / g},
              {"speedup_layer", dl / l},
              {"speedup_fused", df > 0 && f > 0 ? nlohmann::json(df / f) : nlohmann::json(nullptr)},
              {"dense_best_candidate_us", best_cand},
              {"alg", alg},
              {"validated", valid},
              {"gemm_sm_mhz", gs.sm_mhz_median},
              {"gemm_power_w", gs.power_w_mean},
              {"gemm_power_capped", gs.power_capped_frac}};
        };
        records.push_back(record("cublaslt", "dense", sh.K, dg, dl, dp, df, best,
                                 "cublaslt#" + std::to_string(best_i), "reference"));
        std::printf(
            "%-10s %-5s %-5s %-12s %-8s %6lld %9.1f %9.1f %8.1f %7.3f %7.3f  best-cand %.1f fused "
            "%.1f us  %.0f MHz %.0f W\n",
            "cublaslt", pr.name.c_str(), "dense", sh.model.c_str(), sh.layer.c_str(),
            static_cast<long long>(M), dg, dl, tflops(M, sh.N, sh.K, dg), 1.0, 1.0, best, df,
            gs.sm_mhz_median, gs.power_w_mean);
        std::fflush(stdout);
        if (cdense) {
          double g = 0, l = 0, p = 0, f = 0;
          SS_ASSIGN_OR_RETURN(std::string calg, tune_cutlass(*cdense));
          SS_RETURN_IF_ERROR(measure(*cdense, &g, &l, &p, &f));
          records.push_back(
              record("cutlass", "dense", sh.K, g, l, p, f, nullptr, calg, cdense_valid));
          std::printf(
              "%-10s %-5s %-5s %-12s %-8s %6lld %9.1f %9.1f %8.1f %7.3f %7.3f  %s fused %.1f us "
              "(%.3fx)  %.0f MHz %.0f W\n",
              "cutlass", pr.name.c_str(), "dense", sh.model.c_str(), sh.layer.c_str(),
              static_cast<long long>(M), g, l, tflops(M, sh.N, sh.K, g), dg / g, dl / l,
              calg.c_str(), f, f > 0 ? df / f : 0.0, gs.sm_mhz_median, gs.power_w_mean);
          std::fflush(stdout);
        }
        for (auto& c : sps) {
          double gem = 0, lay = 0, pro = 0, fus = 0;
          std::string alg = "heuristic";
          if (c.backend == "cutlass") {
            SS_ASSIGN_OR_RETURN(alg, tune_cutlass(*c.l));
          }
          SS_RETURN_IF_ERROR(measure(*c.l, &gem, &lay, &pro, &fus));
          if (c.backend == "cusparselt")
            if (const TuneEntry* e =
                    tuning.find_nearest("cusparselt", pr.name, c.p.str(), sh.N, sh.K, M)) {
              alg = "alg" + std::to_string(e->alg_id) + "/splitk" + std::to_string(e->split_k);
            }
          nlohmann::json r =
              record(c.backend, c.p.str(), c.Kl, gem, lay, pro, fus, nullptr, alg, c.valid);
          records.push_back(r);
          std::printf(
              "%-10s %-5s %-5s %-12s %-8s %6lld %9.1f %9.1f %8.1f %7.3f %7.3f  %s fused %.1f us "
              "(%.3fx)  %.0f MHz %.0f W\n",
              c.backend.c_str(), pr.name.c_str(), c.p.str().c_str(), sh.model.c_str(),
              sh.layer.c_str(), static_cast<long long>(M), gem, lay, tflops(M, sh.N, sh.K, gem),
              dg / gem, dl / lay, alg.c_str(), fus, fus > 0 ? df / fus : 0.0, gs.sm_mhz_median,
              gs.power_w_mean);
          std::fflush(stdout);
          if (c.backend != "cusparselt") continue;
          // auto: the layer AutoLinear picks for this M (same kernels, so its measured time).
          const bool use_sparse =
              have_tuning && tuning.prefer_sparse(pr.name, c.p.str(), sh.N, sh.K, M);
          nlohmann::json a = r;
          a["backend"] = use_sparse ? "auto:sparse" : "auto:dense";
          a["pattern"] = "auto-" + c.p.str();
          a["gemm_us"] = use_sparse ? gem : dg;
          a["layer_us"] = use_sparse ? lay : dl;
          a["speedup_gemm"] = use_sparse ? dg / gem : 1.0;
          a["speedup_layer"] = use_sparse ? dl / lay : 1.0;
          a["tflops"] = tflops(M, sh.N, sh.K, use_sparse ? gem : dg);
          records.push_back(a);
        }
      }
      SS_RETURN_IF_ERROR(write_results());
    }
  }
  SS_RETURN_IF_ERROR(write_results());
  std::printf("# wrote %s/kernel.json and kernel.csv (%zu records)\n", o.out_dir.c_str(),
              records.size());
  return Status::Ok();
}

Status run_tune(const TuneOptions& o) {
  if (o.out.empty()) return invalid_argument("tune: --out FILE is required");
  SS_ASSIGN_OR_RETURN(auto shapes, shapes_for(o.models, o.square));
  for (const auto& ps : o.precisions) SS_RETURN_IF_ERROR(parse_precision(ps).status());
  for (const auto& s : o.patterns) SS_RETURN_IF_ERROR(parse_pattern_flag(s).status());
  if (o.split_k.empty()) return invalid_argument("tune: --split-k needs at least one value");
  if (o.Ms.empty()) return invalid_argument("tune: --M needs at least one value");
  for (int64_t M : o.Ms)
    if (M < 1 || M > 65536) return invalid_argument("tune: --M values must be 1..65536");
  TuningTable table;
  {
    std::ifstream probe(o.out);
    if (probe) {
      SS_ASSIGN_OR_RETURN(table, TuningTable::load(o.out));
    }
  }
  SS_RETURN_IF_ERROR(check_device());  // after the arguments: usage errors come first
  table.gpu = gpu_name();
  Timer timer;
  SS_RETURN_IF_ERROR(timer.init(o.reps));
  for (const auto& sh : shapes)
    for (const auto& ps : o.precisions) {
      SS_ASSIGN_OR_RETURN(Precision pr, parse_precision(ps));
      LinearConfig cfg;
      cfg.act_dtype = pr.act;
      cfg.tuning = &table;
      int64_t M_max = 0;
      for (int64_t M : o.Ms) M_max = std::max(M_max, TuningTable::bucket(M));
      DeviceBuffer x;
      SS_RETURN_IF_ERROR(x.reserve(static_cast<size_t>(M_max * sh.K) * 2));
      SS_RETURN_IF_ERROR(kernels::launch_fill_random(pr.act, x.get(), M_max * sh.K, 99, nullptr));
      DeviceBuffer y;
      SS_RETURN_IF_ERROR(y.reserve(static_cast<size_t>(M_max * sh.N) * 2));
      auto tune_layer = [&](GpuLinear& l, bool sparse, const std::string& pat) -> Status {
        for (int64_t Mr : o.Ms) {
          const int64_t M = TuningTable::bucket(Mr);
          SS_RETURN_IF_ERROR(l.run_prologue(x.get(), M, nullptr));
          TuneEntry best = l.config(M, -1, 1);
          // CUTLASS layers (SLIDESPARSE_{SPARSE,DENSE}_BACKEND=cutlass or best): their compiled
          // configurations, no split-k, no library search, each timed as the engine runs it —
          // the GEMM with its fused dequant epilogue (forward_prepared, the configuration read
          // from the table) — since the fastest GEMM alone is not always the fastest fused one.
          const bool cut = best.backend == "cutlass";
          auto time_config = [&](const TuneEntry* c) -> Expected<double> {
            if (!cut)
              return timer.median_us([&] { return l.run_gemm_config(M, c, nullptr); }, o.reps);
            if (c) table.put(*c);
            return timer.median_us([&] { return l.forward_prepared(y.get(), M, nullptr); }, o.reps);
          };
          SS_ASSIGN_OR_RETURN(double heur, time_config(nullptr));
          best.us = cut ? std::numeric_limits<double>::infinity() : heur;  // CUTLASS: a config
          std::string how = "heuristic";
          std::vector<TuneEntry> cands;
          SS_ASSIGN_OR_RETURN(int n, l.gemm_configs(M));
          for (int i = 0; i < n; ++i) {
            if (sparse && !cut) {
              for (int k : o.split_k) cands.push_back(l.config(M, i, k));
            } else {
              cands.push_back(l.config(M, i, 1));
            }
          }
          if (sparse && !cut) {
            auto s = l.search_gemm(M, nullptr);
            if (s.ok()) cands.push_back(*s);
          }
          int tried = 0;
          for (auto& c : cands) {
            auto t = time_config(&c);
            if (!t.ok()) continue;  // a configuration the library rejects for this shape
            ++tried;
            if (*t < best.us) {
              best = c;
              best.us = *t;
              how = cut ? "config" + std::to_string(c.algo_index)
                    : sparse
                        ? "alg" + std::to_string(c.alg_id) + "/splitk" + std::to_string(c.split_k)
                        : "candidate" + std::to_string(c.algo_index);
            }
          }
          best.M_bucket = M;
          table.put(best);
          // The layers read `table`: forward now runs the chosen configuration.
          SS_ASSIGN_OR_RETURN(
              best.layer_us,
              timer.median_us([&] { return l.forward(x.get(), y.get(), M, nullptr); }, o.reps));
          table.put(best);
          std::printf(
              "tune %-10s %-5s %-5s %-12s %-8s M=%-6lld best %-16s %9.1f us (layer %.1f us, "
              "heuristic %.1f, %d configs)\n",
              best.backend.c_str(), pr.name.c_str(), pat.c_str(), sh.model.c_str(),
              sh.layer.c_str(), static_cast<long long>(M), how.c_str(), best.us, best.layer_us,
              heur, tried);
          std::fflush(stdout);
        }
        return Status::Ok();
      };
      std::vector<Pattern> pats;
      for (const auto& s : o.patterns) {
        SS_ASSIGN_OR_RETURN(Pattern p, parse_pattern_flag(s));
        pats.push_back(p);
      }
      {
        NmTensor w = synth_nm(pats.empty() ? Pattern{2, 4} : pats[0], sh.N, sh.K, pr, 7);
        SS_ASSIGN_OR_RETURN(auto dense, make_dense_linear(w, nullptr, cfg));
        SS_RETURN_IF_ERROR(tune_layer(*dense, false, "dense"));
      }
      for (const auto& p : pats) {
        NmTensor w = synth_nm(p, sh.N, sh.K, pr, 7);
        SS_ASSIGN_OR_RETURN(auto sparse, make_sparse_linear(w, nullptr, cfg));
        SS_RETURN_IF_ERROR(tune_layer(*sparse, true, p.str()));
      }
      SS_RETURN_IF_ERROR(table.save(o.out));  // after every shape: partial results survive
    }
  std::printf("# wrote %s (%zu entries)\n", o.out.c_str(), table.entries.size());
  return Status::Ok();
}

}  // namespace slidesparse::cuda
