// `bench e2e` and `synth --config-only` through the CLI binary, without needing a GPU: --help,
// every bad argument gives one error line and a non-zero exit, and a run on a machine without a
// usable GPU (or a build without CUDA) fails with one clear line instead of crashing. On a GPU
// machine the last test runs a tiny synthetic model end to end and checks e2e.json / e2e.csv.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "e2e/cli_test_util.h"

namespace fs = std::filesystem;

namespace {

using slidesparse::test::CliRun;
using slidesparse::test::read_all;
using slidesparse::test::run_cli;

std::string dir() {
  static std::string d = [] {
    std::string p = std::string(SS_TEST_TMP) + "/cli_bench_e2e_" + std::to_string(::getpid());
    fs::create_directories(p);
    return p;
  }();
  return d;
}

CliRun cli(const std::string& args) {
  return run_cli(dir(), args);
}

void expect_one_error_line(const CliRun& r, const std::string& needle, int rc = -2) {
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.rc, -1) << "crashed";
  if (rc != -2) EXPECT_EQ(r.rc, rc) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

std::string e2e(const std::string& args) {
  return "bench e2e " + args + " --out " + dir() + "/o";
}

TEST(CliBenchE2e, Help) {
  CliRun r = cli("bench e2e --help");
  EXPECT_EQ(r.rc, 0) << r.err;
  for (const char* flag :
       {"--arch", "--pattern", "--quant", "--linear-mode", "--mode", "--M", "--prompt-len",
        "--batch", "--gen-len", "--profile", "--gemm-backend", "--out"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
}

TEST(CliBenchE2e, BadArguments) {
  // Usage errors: exit code 2, one line naming the flag and the expectation.
  expect_one_error_line(cli(e2e("")), "exactly one of MODEL", 2);
  expect_one_error_line(cli(e2e(dir() + " --arch tiny-llama")), "exactly one of MODEL", 2);
  expect_one_error_line(cli(e2e("--arch gpt-5")), "--arch 'gpt-5'", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --pattern dense,7:8")), "--pattern '7:8'", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --pattern 6:8x")), "--pattern '6:8x'", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --pattern ,")), "--pattern: empty", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --quant int4")), "--quant 'int4'", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --linear-mode fast")), "--linear-mode", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --mode train")), "--mode 'train'", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --act fp32")), "--act 'fp32'", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --gemm-backend cublas")),
                        "--gemm-backend 'cublas'", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --M 512,abc")), "--M '512,abc'", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --M 0")), "--M 0", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --M 131072")), "--M 131072", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --M 1500")), "multiple of --prompt-len", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --prompt-len 0")), "--prompt-len 0", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --batch 1,-4")), "--batch -4", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --gen-len 0")), "--gen-len 0", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --reps 0")), "--reps 0", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --warmup -1")), "--warmup -1", 2);
  expect_one_error_line(cli(e2e("--arch tiny-llama --mode decode --batch 4096 --decode-prompt 32")),
                        "--decode-prompt", 2);
  expect_one_error_line(cli("bench e2e --arch tiny-llama"), "--out is required", 2);
  expect_one_error_line(cli(e2e(dir() + "/no_such_model")), "no_such_model");
  // --out that cannot be a directory
  expect_one_error_line(cli("bench e2e --arch tiny-llama --out /proc/no/such/dir"), "--out");
  // A missing parent is an error (nothing is created); a run that fails before any result (a
  // model that does not load, or no GPU) removes the --out directory it made.
  expect_one_error_line(cli("bench e2e --arch tiny-llama --out " + dir() + "/nope/x/o"),
                        "parent directory");
  EXPECT_FALSE(fs::exists(dir() + "/nope"));
  expect_one_error_line(cli("bench e2e " + dir() + "/no_such_model --out " + dir() + "/o_fail"),
                        "");
  EXPECT_FALSE(fs::exists(dir() + "/o_fail"));
}

TEST(CliBenchE2e, SynthConfigOnly) {
  const std::string d = dir() + "/cfg";
  CliRun r = cli("synth --arch qwen2.5-7b --config-only --out " + d);
  ASSERT_EQ(r.rc, 0) << r.err;
  ASSERT_TRUE(fs::exists(d + "/config.json"));
  EXPECT_TRUE(fs::exists(d + "/generation_config.json"));
  EXPECT_FALSE(fs::exists(d + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(d + "/model.safetensors.index.json"));
  auto j = nlohmann::json::parse(read_all(d + "/config.json"));
  EXPECT_EQ(j["hidden_size"], 3584);
  EXPECT_EQ(j["intermediate_size"], 18944);
  EXPECT_EQ(j["num_hidden_layers"], 28);
  EXPECT_EQ(j["model_type"], "qwen2");
  // A config-only directory is not a model: bench e2e MODEL names the missing weights.
  CliRun b = cli(e2e(d + " --mode prefill --M 16"));
  EXPECT_NE(b.rc, 0);
  EXPECT_NE(b.rc, -1) << "crashed";
  EXPECT_EQ(std::count(b.err.begin(), b.err.end(), '\n'), 1) << b.err;
  // Existing output without --force: refused, one line.
  expect_one_error_line(cli("synth --arch qwen2.5-7b --config-only --out " + d), d);
}

// Without a usable GPU (this is how CI runs it) the run is refused with one clear line; with a
// GPU, a tiny model runs end to end and the outputs hold one record per (model, mode, M).
TEST(CliBenchE2e, TinyModelOrClearError) {
  const std::string out = dir() + "/tiny";
  CliRun r =
      cli("bench e2e --arch tiny-qwen2 --pattern dense,6:8 --quant int8,none --M 16,64 "
          "--prompt-len 32 --batch 1,3 --gen-len 4 --reps 2 --out " +
          out);
  ASSERT_NE(r.rc, -1) << "crashed: " << r.err;
  if (r.rc != 0) {
    expect_one_error_line(r, "");
    const bool clear =
        r.err.find("GPU") != std::string::npos || r.err.find("CUDA") != std::string::npos ||
        r.err.find("cuda") != std::string::npos || r.err.find("device") != std::string::npos;
    EXPECT_TRUE(clear) << r.err;
    EXPECT_EQ(r.rc, 1) << r.err;
    return;
  }
  auto recs = nlohmann::json::parse(read_all(out + "/e2e.json"));
  // 2 precisions x 2 patterns x (2 prefill M + 2 decode batches)
  ASSERT_EQ(recs.size(), 16u);
  for (const auto& x : recs) {
    EXPECT_GT(x["tokens_per_s"].get<double>(), 0.0);
    EXPECT_GT(x["ttft_ms"].get<double>(), 0.0);
    EXPECT_GT(x["peak_mem_gb"].get<double>(), 0.0);
    if (x["mode"] == "decode") EXPECT_GT(x["tpot_ms"].get<double>(), 0.0);
    if (x["pattern"] == "dense") EXPECT_DOUBLE_EQ(x["speedup"].get<double>(), 1.0);
    EXPECT_FALSE(x["speedup"].is_null());
    // What --gemm-backend best became: the library for bf16 linears; best (CUTLASS from M = 512)
    // or the library (no CUTLASS in this build, or not an sm_90 GPU) for int8 ones.
    EXPECT_EQ(x["gemm_backend"], "best");
    if (x["dtype"] == "bf16")
      EXPECT_EQ(x["gemm_backend_resolved"], "library");
    else
      EXPECT_TRUE(x["gemm_backend_resolved"] == "best" || x["gemm_backend_resolved"] == "library")
          << x["gemm_backend_resolved"];
  }
  EXPECT_EQ(std::count_if(recs.begin(), recs.end(),
                          [](const nlohmann::json& x) { return x["M"] == 64 && x["batch"] == 2; }),
            4);  // M = 64 with prompt-len 32: 2 sequences
  const std::string csv = read_all(out + "/e2e.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 17);
}

}  // namespace

namespace {

void write_file(const std::string& p, const std::string& s) {
  std::ofstream(p) << s;
}

// scripts/plot_e2e.py (what the device run uses to merge its parts): two e2e.json parts and an HF
// baseline in, merged e2e.json / e2e.csv, the SVG and the tables out. The records are test inputs
// for the script, not measurements.
TEST(PlotE2e, MergesPartsTablesAndSvg) {
  if (std::system("python3 -c 'import json' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no python3";
  const std::string d = dir() + "/plot";
  fs::create_directories(d);
  auto rec = [](const char* dtype, const char* pat, const char* mode, int M, double tps,
                double speedup) {
    nlohmann::json r = {{"model", "qwen2.5-7b"},
                        {"dtype", dtype},
                        {"pattern", pat},
                        {"mode", mode},
                        {"M", M},
                        {"batch", std::string(mode) == "decode" ? M : std::max(1, M / 1024)},
                        {"tokens_per_s", tps},
                        {"ttft_ms", 10.0},
                        {"tpot_ms", std::string(mode) == "decode" ? nlohmann::json(4.0) : nullptr},
                        {"peak_mem_gb", 30.0},
                        {"speedup", speedup},
                        {"linear_mode", std::string(pat) == "dense" ? "dense" : "sparse"},
                        {"profiled", false}};
    return r;
  };
  nlohmann::json a = nlohmann::json::array(), b = nlohmann::json::array();
  for (int M : {512, 16384}) {
    a.push_back(rec("int8", "dense", "prefill", M, 1000, 1.0));
    a.push_back(rec("int8", "6:8", "prefill", M, 1100, 1.1));
    a.push_back(rec("bf16", "dense", "prefill", M, 800, 1.0));
  }
  for (int B : {1, 64}) {
    b.push_back(rec("int8", "dense", "decode", B, 100.0 * B, 1.0));
    b.push_back(rec("int8", "6:8", "decode", B, 95.0 * B, 0.95));
    b.push_back(rec("bf16", "dense", "decode", B, 80.0 * B, 1.0));
  }
  nlohmann::json prof = rec("int8", "6:8", "prefill", 16384, 1090, 1.09);
  prof["profiled"] = true;
  prof["profile_ms"] = {{"qkv", 2.0}, {"attention", 1.0}, {"gate_up", 5.0}, {"rmsnorm", 0.5}};
  prof["profile_total_ms"] = 8.5;
  prof["non_gemm_frac"] = 1.5 / 8.5;
  b.push_back(prof);
  nlohmann::json hf = {{"torch", "t"},
                       {"transformers", "x"},
                       {"device", "d"},
                       {"records",
                        {{{"model", "qwen2.5-7b"},
                          {"mode", "prefill"},
                          {"M", 16384},
                          {"tokens_per_s", 400.0},
                          {"ttft_ms", 40.0}},
                         {{"model", "qwen2.5-7b"},
                          {"mode", "decode"},
                          {"M", 64},
                          {"tokens_per_s", 2000.0},
                          {"ttft_ms", 20.0},
                          {"tpot_ms", 32.0},
                          {"generate_tokens_per_s", 1900.0}},
                         {{"model", "qwen2.5-7b"},
                          {"mode", "decode"},
                          {"M", 1},
                          {"tokens_per_s", nullptr},
                          {"error", "out of memory"}}}}};
  write_file(d + "/a.json", a.dump());
  write_file(d + "/b.json", b.dump());
  write_file(d + "/hf.json", hf.dump());
  const std::string cmd = "python3 " + std::string(SS_SOURCE_DIR) + "/scripts/plot_e2e.py --out " +
                          d + "/out " + d + "/a.json " + d + "/b.json " + d + "/hf.json >" + d +
                          "/tables.txt 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_all(d + "/tables.txt");
  const std::string t = read_all(d + "/tables.txt");
  EXPECT_NE(t.find("qwen2.5-7b prefill"), std::string::npos) << t;
  EXPECT_NE(t.find("qwen2.5-7b decode"), std::string::npos) << t;
  EXPECT_NE(t.find("1100 (1.100)"), std::string::npos) << t;
  EXPECT_NE(t.find("-> 2.00x"), std::string::npos) << t;  // ours bf16 dense 800 vs HF 400
  EXPECT_NE(t.find("-> 2.56x"), std::string::npos) << t;  // decode B=64: 5120 vs 2000
  EXPECT_NE(t.find("HF failed: out of memory"), std::string::npos) << t;
  EXPECT_NE(t.find("non-GEMM 0.176"), std::string::npos) << t;
  // Issue 5's target lines: 6:8 int8 at 1.10x is below 1.15x; 2.00x over HF meets >= 1.0x.
  EXPECT_NE(t.find("int8 6:8 >= 1.15x dense: 1.100x -> NOT met"), std::string::npos) << t;
  EXPECT_NE(t.find("vs HF prefill >= 1.0x: M=16384 2.00x -> met"), std::string::npos) << t;
  EXPECT_NE(t.find("non-GEMM <= 20% of a prefill step at M=16384: 17.6% -> met"), std::string::npos)
      << t;
  auto merged = nlohmann::json::parse(read_all(d + "/out/e2e.json"));
  EXPECT_EQ(merged.size(), a.size() + b.size());
  const std::string csv = read_all(d + "/out/e2e.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), static_cast<long>(merged.size() + 1));
  const std::string svg = read_all(d + "/out/e2e.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("qwen2.5-7b int8 6:8"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

}  // namespace
