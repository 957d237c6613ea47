// `eval ppl` / `eval logits` / `generate` through the CLI binary: bad inputs give one error line
// and a non-zero exit code (malformed GGUF, missing/empty/binary text, context longer than the
// model's, unsupported architecture), and a tiny synthetic model evaluates end to end.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "e2e/cli_test_util.h"

namespace fs = std::filesystem;

namespace {

using slidesparse::test::CliRun;
using slidesparse::test::read_all;
using slidesparse::test::run_cli;
using slidesparse::test::write_all;

std::string dir() {
  static std::string d = [] {
    std::string p = std::string(SS_TEST_TMP) + "/cli_eval_" + std::to_string(::getpid());
    fs::create_directories(p);
    return p;
  }();
  return d;
}

CliRun cli(const std::string& args) {
  return run_cli(dir(), args);
}

std::string model() {
  return std::string(SS_SOURCE_DIR) + "/.deps/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

void expect_one_error_line(const CliRun& r, const std::string& needle) {
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.rc, -1) << "crashed";
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(CliEval, MalformedGguf) {
  write_all(dir() + "/bad.gguf", "GGUF\x03\0\0\0garbage");
  expect_one_error_line(cli("eval ppl " + dir() + "/bad.gguf"), "bad.gguf");
  write_all(dir() + "/notgguf.gguf", "hello world, not a model at all");
  expect_one_error_line(cli("eval ppl " + dir() + "/notgguf.gguf"), "notgguf.gguf");
  expect_one_error_line(cli("generate " + dir() + "/bad.gguf --prompt hi"), "bad.gguf");
  expect_one_error_line(cli("eval ppl " + dir() + "/missing.gguf"), "missing.gguf");
}

// The CUDA engine loads checkpoint directories: a GGUF file with --device cuda is a one-line error
// (in a build without CUDA, --device cuda itself is) and the prompt is not echoed before it.
TEST(CliEval, GgufOnCudaIsAnErrorWithNoOutput) {
  if (!fs::exists(model())) GTEST_SKIP() << "no embedded model";
  const bool cuda_build = cli("--version").out.find("CUDA backend") != std::string::npos;
  const CliRun r = cli("generate " + model() + " --device cuda --prompt hi --max-new-tokens 2");
  expect_one_error_line(r, cuda_build ? "GGUF files run on the CPU engine" : "");
  EXPECT_EQ(r.out, "");
}

// eval logits --out: never the model itself nor a file inside its directory, not a directory,
// not empty; the model is untouched and no temporary file is left.
TEST(CliEval, LogitsOutputPathIsChecked) {
  const std::string m = dir() + "/lq";
  fs::remove_all(m);
  ASSERT_EQ(cli("synth --arch tiny-qwen2 --out " + m).rc, 0);
  const std::string before = read_all(m + "/model.safetensors");
  expect_one_error_line(cli("eval logits " + m + " --tokens 1 --out " + m + "/model.safetensors"),
                        "lies inside it");
  expect_one_error_line(cli("eval logits " + m + " --tokens 1 --out " + m + "/config.json"),
                        "lies inside it");
  expect_one_error_line(cli("eval logits " + m + " --tokens 1 --out " + dir()), "is a directory");
  expect_one_error_line(cli("eval logits " + m + " --tokens 1 --out ''"), "empty path");
  EXPECT_EQ(read_all(m + "/model.safetensors"), before);
  for (const auto& e : fs::directory_iterator(dir()))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  for (const auto& e : fs::directory_iterator(m))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  const std::string g = dir() + "/in.gguf";  // a model file is an input too (checked first)
  write_all(g, "GGUF");
  expect_one_error_line(cli("eval logits " + g + " --tokens 1 --out " + g), "is the input");
  EXPECT_EQ(read_all(g), "GGUF");
}

// Unknown command words and options are named; list flags reject empty items; a tuning file
// that is a directory or not JSON is a clear error (before any GPU is needed).
TEST(CliEval, UnknownCommandsListsAndTuningFiles) {
  expect_one_error_line(cli("frobnicate"), "unknown command 'frobnicate'");
  expect_one_error_line(cli("--bogus"), "unknown option '--bogus'");
  expect_one_error_line(cli("eval foo"), "unknown command 'eval foo'");
  expect_one_error_line(cli("bench"), "'bench' needs a subcommand (see bench --help)");
  expect_one_error_line(cli("eval --bogus"), "'eval' needs a subcommand (see eval --help)");
  expect_one_error_line(cli(""), "a command is required");
  // An error inside a nested command keeps its own message.
  const CliRun nested = cli("bench e2e --out " + dir() + "/y --frob");
  expect_one_error_line(nested, "--frob");
  EXPECT_EQ(nested.err.find("needs a subcommand"), std::string::npos) << nested.err;
  expect_one_error_line(cli("bench e2e --arch tiny-qwen2 --M 1,,2 --out " + dir() + "/x"),
                        "empty item");
  if (cli("--version").out.find("CUDA backend") == std::string::npos) return;  // tune: CUDA only
  expect_one_error_line(cli("tune --out " + dir()), "is a directory");
  write_all(dir() + "/not.json", std::string("\x01\x02{", 3));
  const CliRun r = cli("tune --out " + dir() + "/not.json");
  expect_one_error_line(r, "not valid JSON");
  EXPECT_EQ(r.err.find('\x01'), std::string::npos) << "binary bytes echoed";
}

TEST(CliEval, BadTextFiles) {
  if (!fs::exists(model())) GTEST_SKIP() << "no embedded model";
  expect_one_error_line(cli("eval ppl " + model() + " --text " + dir() + "/nope.txt"), "nope.txt");
  write_all(dir() + "/empty.txt", "");
  expect_one_error_line(cli("eval ppl " + model() + " --text " + dir() + "/empty.txt"),
                        "empty.txt");
  write_all(dir() + "/bin.txt", std::string("abc\0\x01\xff\xfe", 7));
  expect_one_error_line(cli("eval ppl " + model() + " --text " + dir() + "/bin.txt"), "bin.txt");
  const std::string before = read_all(dir() + "/bin.txt");
  EXPECT_EQ(read_all(dir() + "/bin.txt"), before);
}

TEST(CliEval, ContextLongerThanTheModel) {
  if (!fs::exists(model())) GTEST_SKIP() << "no embedded model";
  write_all(dir() + "/t.txt",
            "The quick brown fox jumps over the lazy dog. It was a dark night.\n");
  expect_one_error_line(cli("eval ppl " + model() + " --text " + dir() + "/t.txt --ctx 9000"),
                        "8192");
  expect_one_error_line(cli("eval ppl " + model() + " --ctx 0"), "--ctx");
}

TEST(CliEval, UnsupportedArchitecture) {
  const std::string d = dir() + "/gpt2";
  fs::create_directories(d);
  write_all(d + "/config.json",
            R"({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 64})");
  write_all(d + "/tokenizer.json", R"({"model": {"type": "BPE", "vocab": {}}})");
  expect_one_error_line(cli("eval logits " + d + " --tokens 1,2 --out " + dir() + "/l.bin"),
                        "GPT2LMHeadModel");
  EXPECT_FALSE(fs::exists(dir() + "/l.bin"));
}

TEST(CliEval, TinyModelLogitsAndGenerate) {
  const std::string d = dir() + "/tiny";
  ASSERT_EQ(cli("synth --arch tiny-llama --out " + d).rc, 0);
  CliRun r = cli("eval logits " + d + " --tokens 1,2,3,4 --out " + dir() + "/logits.bin");
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::string bin = read_all(dir() + "/logits.bin");
  EXPECT_EQ(bin.size() % (4 * sizeof(float)), 0u);
  EXPECT_GT(bin.size(), 0u);
  expect_one_error_line(cli("eval logits " + d + " --tokens 1,x --out " + dir() + "/l2.bin"),
                        "'x'");
  expect_one_error_line(cli("eval logits " + d + " --tokens 99999999 --out " + dir() + "/l2.bin"),
                        "vocabulary");
  EXPECT_FALSE(fs::exists(dir() + "/l2.bin"));
}

// convert --prune wanda --calib-text: calibrated by the engine on a tiny synthetic model with a
// minimal byte-level tokenizer.json (printable ASCII + newline).
TEST(CliEval, ConvertWandaCalibText) {
  const std::string d = dir() + "/tinyw";
  ASSERT_EQ(cli("synth --arch tiny-llama --out " + d).rc, 0);
  std::string vocab = "\"\u0120\": 0, \"\u010a\": 95";
  for (int b = 33; b < 127; ++b) {
    std::string c(1, static_cast<char>(b));
    if (c == "\"" || c == "\\") c = "\\" + c;
    vocab += ", \"" + c + "\": " + std::to_string(b - 32);
  }
  write_all(d + "/tokenizer.json",
            "{\"model\": {\"type\": \"BPE\", \"vocab\": {" + vocab + "}, \"merges\": []}}");
  write_all(dir() + "/calib.txt", "It was the best of times, it was the worst of times.\n");
  CliRun r = cli("convert " + d + " --out " + dir() +
                 "/w68 --pattern 6:8 --prune wanda --calib-text " + dir() + "/calib.txt --quiet");
  ASSERT_EQ(r.rc, 0) << r.err;
  r = cli("inspect " + dir() + "/w68");
  EXPECT_EQ(r.rc, 0) << r.err;
  const std::string cfg = read_all(dir() + "/w68/slidesparse_config.json");
  EXPECT_NE(cfg.find("wanda"), std::string::npos);
  EXPECT_NE(cfg.find("calib.txt"), std::string::npos);
  // Logits of the converted model through the engine.
  r = cli("eval logits " + dir() + "/w68 --tokens 1,2,3 --out " + dir() + "/w.bin");
  EXPECT_EQ(r.rc, 0) << r.err;
  expect_one_error_line(
      cli("convert " + d + " --out " + dir() + "/w2 --pattern 6:8 --prune wanda " +
          "--calib-text " + dir() + "/nope.txt"),
      "nope.txt");
  EXPECT_FALSE(fs::exists(dir() + "/w2"));
}

// convert accepts a GGUF input: HF-layout bf16 SlideSparse checkpoint with a generated
// tokenizer.json; the engine evaluates it.
TEST(CliEval, ConvertFromGguf) {
  if (!fs::exists(model())) GTEST_SKIP() << "no embedded model";
  CliRun r =
      cli("convert " + model() + " --out " + dir() + "/g810 --pattern 8:10 --quant int8 --quiet");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir() + "/g810/tokenizer.json"));
  EXPECT_EQ(cli("inspect " + dir() + "/g810").rc, 0);
  r = cli("eval ppl " + dir() + "/g810 --max-tokens 48 --ctx 24 --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("SlideSparse 8:10 magnitude int8"), std::string::npos) << r.out;
  write_all(dir() + "/broken.gguf", read_all(model()).substr(0, 5000));
  expect_one_error_line(
      cli("convert " + dir() + "/broken.gguf --out " + dir() + "/gb --pattern 6:8"), "broken.gguf");
  EXPECT_FALSE(fs::exists(dir() + "/gb"));
}

TEST(CliEval, SmolLM2PerplexityJson) {
  if (!fs::exists(model())) GTEST_SKIP() << "no embedded model";
  CliRun r = cli("eval ppl " + model() + " --max-tokens 64 --ctx 32 --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("\"ppl\""), std::string::npos);
  EXPECT_NE(r.out.find("\"tokens\": 63"), std::string::npos) << r.out;
  r = cli("generate " + model() + " --prompt 'The capital of France is' --max-new-tokens 3");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("Paris"), std::string::npos) << r.out;
}

// generate --tokens/--print-ids (no tokenizer needed) and the --device flags: one line of ids on
// the CPU engine; cuda-only flags with --device cpu, an unknown device, both or neither of
// --prompt/--tokens are one-line errors; --device cuda without a usable GPU (or without CUDA in
// the build) is a one-line error too, never a crash.
TEST(CliEval, GenerateIdsAndDeviceFlags) {
  const std::string m = dir() + "/tq";
  ASSERT_EQ(cli("synth --arch tiny-qwen2 --out " + m).rc, 0);
  CliRun r = cli("generate " + m + " --tokens 1,2,3 --max-new-tokens 5 --print-ids");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_LE(std::count(r.out.begin(), r.out.end(), ','), 4) << r.out;
  EXPECT_TRUE(r.out.find_first_not_of("0123456789,\n") == std::string::npos) << r.out;
  expect_one_error_line(cli("generate " + m + " --tokens 1,2 --print-ids --dtype fp16"),
                        "--device cuda only");
  expect_one_error_line(cli("generate " + m + " --tokens 1,2 --print-ids --gemm-backend cutlass"),
                        "--device cuda only");
  expect_one_error_line(cli("generate " + m + " --tokens 1,2 --print-ids --device tpu"), "tpu");
  expect_one_error_line(cli("generate " + m + " --print-ids"), "exactly one of");
  expect_one_error_line(cli("generate " + m + " --tokens 1,x --print-ids"), "'x'");
  expect_one_error_line(cli("generate " + m + " --tokens 1,2 --print-ids --prompt hi"),
                        "exactly one of");
  for (const char* bad : {"' 1'", "+3", "1,2,", "2147483648"})
    expect_one_error_line(cli("generate " + m + " --print-ids --tokens " + bad), "--tokens");
  for (const char* bad : {"nan", "inf", "-1"})
    expect_one_error_line(cli("generate " + m + " --tokens 1 --print-ids --temperature " + bad),
                          "--temperature");
  expect_one_error_line(cli("generate " + m + " --tokens 1 --print-ids --seed -1"), "--seed");
  expect_one_error_line(cli("inspect " + m + " --threads 0"), "--threads");
  expect_one_error_line(cli("eval ppl " + m + " --stride 0"), "--stride must be >= 1");
  r = cli("eval logits " + m + " --tokens 1,2 --out " + dir() + "/l.bin --device cuda");
  if (r.rc != 0) {  // no GPU here (with a GPU, the gpu tests cover it)
    expect_one_error_line(r, "");
  } else {
    EXPECT_EQ(fs::file_size(dir() + "/l.bin"), 2u * 300u * 4u);
  }
}

}  // namespace
