// Tuning table rules (buckets, nearest tuned bucket, the `auto` decision, JSON round trip and
// malformed files) and the argument errors of `bench kernel` / `tune`. No GPU needed: these run
// in every CUDA build, including CI.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "e2e/cli_test_util.h"
#include "slidesparse/linear.h"

namespace slidesparse {
namespace {

TuneEntry entry(const char* backend, const char* pattern, int64_t bucket, double us,
                double layer_us = 0) {
  TuneEntry e;
  e.backend = backend;
  e.precision = "int8";
  e.pattern = pattern;
  e.N = 4608;
  e.K = 3584;
  e.M_bucket = bucket;
  e.us = us;
  e.layer_us = layer_us;
  return e;
}

TEST(TuningTable, BucketsAndNearest) {
  EXPECT_EQ(TuningTable::bucket(1), 1);
  EXPECT_EQ(TuningTable::bucket(17), 32);
  EXPECT_EQ(TuningTable::bucket(4096), 4096);
  EXPECT_EQ(TuningTable::bucket(65536), 65536);
  EXPECT_EQ(TuningTable::bucket(1 << 20), 65536);
  TuningTable t;
  t.put(entry("cusparselt", "6:8", 16, 1.0));
  t.put(entry("cusparselt", "6:8", 4096, 2.0));
  EXPECT_EQ(t.find("cusparselt", "int8", "6:8", 4608, 3584, 3000)->us, 2.0);
  EXPECT_EQ(t.find("cusparselt", "int8", "6:8", 4608, 3584, 100), nullptr);
  EXPECT_EQ(t.find_nearest("cusparselt", "int8", "6:8", 4608, 3584, 100)->M_bucket, 16);
  EXPECT_EQ(t.find_nearest("cusparselt", "int8", "6:8", 4608, 3584, 65536)->M_bucket, 4096);
  EXPECT_EQ(t.find_nearest("cusparselt", "int8", "2:4", 4608, 3584, 16), nullptr);
  EXPECT_EQ(t.find_nearest("cusparselt", "fp8", "6:8", 4608, 3584, 16), nullptr);
  t.put(entry("cusparselt", "6:8", 16, 3.0));  // replaces
  EXPECT_EQ(t.entries.size(), 2u);
  EXPECT_EQ(t.find("cusparselt", "int8", "6:8", 4608, 3584, 9)->us, 3.0);
}

TEST(TuningTable, AutoRule) {
  TuningTable t;
  // bucket 4096: sparse layer 0.9 of dense -> sparse; bucket 256: 0.96 -> dense (0.95 margin).
  t.put(entry("cusparselt", "6:8", 4096, 50, 90));
  t.put(entry("cublaslt", "dense", 4096, 40, 100));
  t.put(entry("cusparselt", "6:8", 256, 10, 9.6));
  t.put(entry("cublaslt", "dense", 256, 11, 10));
  EXPECT_TRUE(t.prefer_sparse("int8", "6:8", 4608, 3584, 4096));
  EXPECT_TRUE(t.prefer_sparse("int8", "6:8", 4608, 3584, 8192));    // nearest within 2x
  EXPECT_FALSE(t.prefer_sparse("int8", "6:8", 4608, 3584, 16384));  // 4x away: no data
  EXPECT_FALSE(t.prefer_sparse("int8", "6:8", 4608, 3584, 256));
  EXPECT_FALSE(t.prefer_sparse("int8", "4:6", 4608, 3584, 4096));  // untuned pattern
  // The entries of the backends that run at this M (GemmBackend::kBest: "cutlass" from M = 512):
  // there the fused dense layer wins.
  t.put(entry("cutlass", "6:8", 4096, 60, 90));
  t.put(entry("cutlass", "dense", 4096, 45, 80));
  EXPECT_FALSE(t.prefer_sparse("int8", "6:8", 4608, 3584, 4096, "cutlass", "cutlass"));
  EXPECT_TRUE(t.prefer_sparse("int8", "6:8", 4608, 3584, 4096, "cutlass", "cublaslt"));
  // Without full-layer times the GEMM times decide.
  TuningTable g;
  g.put(entry("cusparselt", "6:8", 64, 5));
  g.put(entry("cublaslt", "dense", 64, 10));
  EXPECT_TRUE(g.prefer_sparse("int8", "6:8", 4608, 3584, 64));
}

TEST(TuningTable, JsonRoundTripAndErrors) {
  std::filesystem::create_directories(SS_TEST_TMP);
  const std::string path = std::string(SS_TEST_TMP) + "/tuning_test.json";
  TuningTable t;
  t.gpu = "test";
  TuneEntry e = entry("cusparselt", "8:10", 1024, 12.5, 20.25);
  e.alg_id = 17;
  e.split_k = -1;
  e.split_k_mode = 2;
  e.split_k_buffers = 3;
  t.put(e);
  ASSERT_TRUE(t.save(path).ok());
  auto back = TuningTable::load(path);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  ASSERT_EQ(back->entries.size(), 1u);
  const TuneEntry& b = back->entries[0];
  EXPECT_EQ(b.alg_id, 17);
  EXPECT_EQ(b.split_k, -1);
  EXPECT_EQ(b.split_k_mode, 2);
  EXPECT_EQ(b.split_k_buffers, 3);
  EXPECT_EQ(b.us, 12.5);
  EXPECT_EQ(b.layer_us, 20.25);
  EXPECT_EQ(back->gpu, "test");
  // Missing file, broken JSON, bad entry: one line each, naming the file.
  auto missing = TuningTable::load(path + ".nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  for (const char* text : {"{not json", "{\"entries\": [{\"backend\": \"cublaslt\"}]}",
                           "{\"entries\": [{\"backend\": \"x\", \"precision\": \"int8\", "
                           "\"pattern\": \"dense\", \"N\": 0, \"K\": 1, \"M_bucket\": 1}]}"}) {
    std::ofstream(path) << text;
    auto bad = TuningTable::load(path);
    EXPECT_EQ(bad.status().code(), StatusCode::kFormatError) << text;
    EXPECT_NE(bad.status().message().find(path), std::string::npos);
    EXPECT_EQ(bad.status().message().find('\n'), std::string::npos);
  }
}

// Runs the CLI; returns the exit code and the combined output.
int run_cli(const std::string& args, std::string* out) {
  std::string cmd = test::cli_path() + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::array<char, 512> buf{};
  out->clear();
  while (fgets(buf.data(), buf.size(), p)) *out += buf.data();
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(KernelBenchCli, UsageErrorsAreOneLineBeforeAnyGpuWork) {
  const std::string dir = std::string(SS_TEST_TMP) + "/bench_cli";
  std::filesystem::remove_all(dir);
  struct Case {
    std::string args, needle;
  } cases[] = {
      {"bench kernel --model llama9 --out " + dir, "--model 'llama9'"},
      {"bench kernel --dtype int4 --out " + dir, "--dtype 'int4'"},
      {"bench kernel --pattern 7:8 --out " + dir, "7:8"},
      {"bench kernel --M 0,16 --out " + dir, "--M values"},
      {"bench kernel --M 1,x --out " + dir, "--M '1,x'"},
      {"tune --dtype fp4 --out " + dir + "/t.json", "--dtype 'fp4'"},
      {"tune --M 70000 --out " + dir + "/t.json", "--M values"},
  };
  for (const auto& c : cases) {
    std::string out;
    int code = run_cli(c.args, &out);
    EXPECT_EQ(code, 2) << c.args << "\n" << out;
    EXPECT_NE(out.find(c.needle), std::string::npos) << c.args << "\n" << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << c.args << "\n" << out;
  }
  EXPECT_FALSE(std::filesystem::exists(dir)) << "no output on a usage error";
  // A missing tuning file is reported as not found (exit 1), naming it.
  std::string out;
  EXPECT_EQ(run_cli("bench kernel --tuning /nonexistent/t.json --out " + dir, &out), 1) << out;
  EXPECT_NE(out.find("/nonexistent/t.json"), std::string::npos) << out;
}

}  // namespace
}  // namespace slidesparse
