// End to end: synth -> convert -> inspect through the CLI binary, and every bad input of issue 2:
// one error line naming the file/tensor, exit code != 0, no output (or temp) directory left
// behind, the input unchanged (hash of every file before and after).
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "e2e/cli_test_util.h"
#include <vector>

#include "slidesparse/model_config.h"
#include "slidesparse/safetensors.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using slidesparse::test::CliRun;
using slidesparse::test::read_all;
using slidesparse::test::write_all;

// One directory per process: ctest runs each test case as its own process, in parallel.
std::string root() {
  static const std::string r =
      std::string(SS_TEST_TMP) + "/cli_convert/" + std::to_string(::getpid());
  return r;
}

CliRun cli(const std::string& args) {
  static int n = 0;
  std::string errf = root() + "/stderr." + std::to_string(n++);
  std::string cmd = std::string(SS_CLI) + " " + args + " 2>" + errf;
  CliRun r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t k;
  while ((k = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, k);
  int st = ::pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  r.err = read_all(errf);
  fs::remove(errf);
  return r;
}

// FNV-1a over every file's relative path and contents, in sorted order.
uint64_t tree_hash(const std::string& dir) {
  std::vector<std::string> files;
  if (fs::is_regular_file(dir))
    files.push_back(dir);
  else
    for (auto& e : fs::recursive_directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&](const std::string& s) {
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  };
  for (auto& f : files) {
    mix(f);
    mix(read_all(f));
  }
  return h;
}

int count_lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

// Nothing named like `out` (or its temp siblings) exists next to it.
void expect_no_output(const std::string& out) {
  EXPECT_FALSE(fs::exists(out)) << out << " was created";
  std::string parent = fs::path(out).parent_path().string();
  std::string base = fs::path(out).filename().string();
  if (!fs::is_directory(parent)) return;
  for (auto& e : fs::directory_iterator(parent)) {
    std::string n = e.path().filename().string();
    EXPECT_NE(n.rfind("." + base + ".", 0), 0u) << "temp left behind: " << n;
  }
}

// A failing command: rc != 0, exactly one stderr line with "error:" containing `needle`.
void expect_error(const CliRun& r, const std::string& needle) {
  EXPECT_NE(r.rc, 0);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "want '" << needle << "' in: " << r.err;
}

class CliConvert : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fs::remove_all(root());
    fs::create_directories(root());
    CliRun r = cli("synth --arch tiny-llama --seed 11 --out " + src());
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  static void TearDownTestSuite() { fs::remove_all(root()); }
  static std::string src() { return root() + "/tiny"; }
  // A fresh copy of the source that a test may corrupt.
  static std::string copy_src(const std::string& name) {
    std::string d = root() + "/" + name;
    fs::remove_all(d);
    fs::copy(src(), d);
    return d;
  }
  // Runs convert on `in` expecting failure naming `needle`; checks no output and `in` unchanged.
  static void convert_fails(const std::string& in, const std::string& extra,
                            const std::string& needle, const std::string& out_name = "out") {
    std::string out = root() + "/" + out_name;
    fs::remove_all(out);
    uint64_t before = tree_hash(in);
    CliRun r = cli("convert " + in + " --out " + out + " " + extra);
    expect_error(r, needle);
    expect_no_output(out);
    EXPECT_EQ(tree_hash(in), before) << "input modified";
  }
};

// Byte offset of tensor `name`'s data in a safetensors file.
size_t data_offset(const std::string& path, const std::string& name, json* header = nullptr) {
  std::string raw = read_all(path);
  uint64_t hl = 0;
  std::memcpy(&hl, raw.data(), 8);
  json h = json::parse(raw.substr(8, hl));
  if (header) *header = h;
  return 8 + hl + h[name]["data_offsets"][0].get<size_t>();
}

}  // namespace

TEST_F(CliConvert, SynthConvertInspectAllPatterns) {
  uint64_t before = tree_hash(src());
  for (const char* pat : {"2:4", "4:6", "6:8", "8:10"}) {
    std::string out = root() + "/ok_" + std::string(pat).replace(1, 1, "_");
    fs::remove_all(out);
    CliRun r = cli("convert " + src() + " --out " + out + " --pattern " + pat + " --quant int8");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.err, "") << "no progress output when stderr is not a terminal";
    EXPECT_NE(r.out.find("wrote"), std::string::npos);
    for (const char* f :
         {"config.json", "generation_config.json", "slidesparse_config.json", "model.safetensors"})
      EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
    CliRun i = cli("inspect " + out + " --json");
    ASSERT_EQ(i.rc, 0) << i.err;
    json j = json::parse(i.out);
    EXPECT_EQ(j["pattern"], pat);
    EXPECT_TRUE(j["totals"]["all_verified"].get<bool>());
    EXPECT_EQ(j["linears"].size(), 14u);
    for (auto& l : j["linears"]) {
      int m = std::stoi(std::string(pat).substr(std::string(pat).find(':') + 1));
      EXPECT_EQ(l["padded"].get<bool>(), l["K"].get<int>() % m != 0) << l.dump();
    }
    CliRun t = cli("inspect " + out);
    ASSERT_EQ(t.rc, 0) << t.err;
    EXPECT_NE(t.out.find("all verified"), std::string::npos);
    if (std::string(pat) == "6:8")
      EXPECT_NE(t.out.find("K=172 padded to 176"), std::string::npos) << t.out;
  }
  EXPECT_EQ(tree_hash(src()), before);
}

TEST_F(CliConvert, ExportDensePrunedAndInspectPlain) {
  std::string out = root() + "/exp_ss", dense = root() + "/exp_dense";
  fs::remove_all(out);
  fs::remove_all(dense);
  CliRun r = cli("convert " + src() + " --out " + out + " --pattern 4:6 --export-dense-pruned " +
                 dense + " --progress");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("[convert] tensor 20/20"), std::string::npos) << r.err;
  CliRun i = cli("inspect " + dense + " --json");
  ASSERT_EQ(i.rc, 0) << i.err;
  json j = json::parse(i.out);
  EXPECT_EQ(j["format"], "hf");
  // 4:6 pruned weights also satisfy nothing stricter with m=6... but do satisfy 4:6.
  auto ph = j["patterns_holding"].get<std::vector<std::string>>();
  EXPECT_NE(std::find(ph.begin(), ph.end(), "4:6"), ph.end()) << i.out;
  CliRun s = cli("inspect " + src() + " --json");
  ASSERT_EQ(s.rc, 0);
  EXPECT_TRUE(json::parse(s.out)["patterns_holding"].empty()) << "random weights are dense";
}

TEST_F(CliConvert, MalformedAndTruncatedSafetensors) {
  std::string d = copy_src("bad_garbage");
  write_all(d + "/model.safetensors", std::string(100, '\x07'));
  convert_fails(d, "", "model.safetensors");
  d = copy_src("bad_trunc");
  std::string raw = read_all(d + "/model.safetensors");
  write_all(d + "/model.safetensors", raw.substr(0, raw.size() / 2));
  convert_fails(d, "", "model.safetensors");
  d = copy_src("bad_short");
  write_all(d + "/model.safetensors", "abc");
  convert_fails(d, "", "at least 8");
  // inspect says the same
  CliRun i = cli("inspect " + d);
  expect_error(i, "model.safetensors");
}

TEST_F(CliConvert, HeaderOffsetsPastTheEnd) {
  std::string d = copy_src("bad_offsets");
  std::string p = d + "/model.safetensors";
  json h;
  data_offset(p, "model.norm.weight", &h);
  std::string raw = read_all(p);
  uint64_t hl = 0;
  std::memcpy(&hl, raw.data(), 8);
  std::string hs = raw.substr(8, hl);
  // Same-length edit: push the end offset of one tensor far past the data.
  std::string key = "model.norm.weight";
  size_t at = hs.find("\"" + key + "\"");
  ASSERT_NE(at, std::string::npos);
  size_t off = hs.find("data_offsets", at);
  size_t rb = hs.find(']', off);
  size_t comma = hs.find(',', off);
  std::string end_num = hs.substr(comma + 1, rb - comma - 1);
  std::string big(end_num.size(), '9');
  hs.replace(comma + 1, end_num.size(), big);
  raw.replace(8, hl, hs);
  write_all(p, raw);
  convert_fails(d, "", "model.norm.weight");
}

TEST_F(CliConvert, UnsupportedDtype) {
  // An unknown dtype string in the header.
  std::string d = copy_src("bad_dtype");
  std::string p = d + "/model.safetensors";
  std::string raw = read_all(p);
  uint64_t hl = 0;
  std::memcpy(&hl, raw.data(), 8);
  std::string hs = raw.substr(8, hl);
  size_t at = hs.find("\"model.norm.weight\"");
  size_t dt = hs.find("\"BF16\"", at);
  ASSERT_NE(dt, std::string::npos);
  hs.replace(dt, 6, "\"XF16\"");
  raw.replace(8, hl, hs);
  write_all(p, raw);
  convert_fails(d, "", "unsupported dtype 'XF16'");
  // A known dtype that convert does not take for a linear: reinterpret q_proj's bf16 as 2x U8.
  d = copy_src("bad_dtype2");
  p = d + "/model.safetensors";
  raw = read_all(p);
  std::memcpy(&hl, raw.data(), 8);
  hs = raw.substr(8, hl);
  at = hs.find("\"model.layers.1.self_attn.q_proj.weight\"");
  dt = hs.find("\"BF16\"", at);
  hs.replace(dt, 6, "\"I16\" ");
  raw.replace(8, hl, hs);
  write_all(p, raw);
  convert_fails(d, "", "model.layers.1.self_attn.q_proj.weight' has dtype I16, expected BF16");
}

// The tensors convert copies as they are (embedding, norms) are checked like the linears, and a
// config with sizes no model has, or another activation, is an error: never a huge allocation,
// never a checkpoint that fails only when loaded (or runs the wrong activation).
TEST_F(CliConvert, NonLinearTensorsAndImplausibleConfigs) {
  std::string d = copy_src("norm_i16");  // a norm stored as I16 (same bytes as its bf16)
  std::string p = d + "/model.safetensors";
  std::string raw = read_all(p);
  uint64_t hl = 0;
  std::memcpy(&hl, raw.data(), 8);
  std::string hs = raw.substr(8, hl);
  size_t dt = hs.find("\"BF16\"", hs.find("\"model.layers.0.input_layernorm.weight\""));
  ASSERT_NE(dt, std::string::npos);
  hs.replace(dt, 6, "\"I16\" ");
  raw.replace(8, hl, hs);
  write_all(p, raw);
  convert_fails(d, "", "input_layernorm.weight' has dtype I16, expected BF16, F16 or F32");
  auto with_config = [&](const std::string& name, const json& change) {
    std::string c = copy_src(name);
    json j = json::parse(read_all(c + "/config.json"));
    j.update(change);
    write_all(c + "/config.json", j.dump());
    return c;
  };
  json cfg = json::parse(read_all(src() + "/config.json"));
  convert_fails(with_config("vocab", {{"vocab_size", cfg["vocab_size"].get<int64_t>() + 8}}), "",
                "model.embed_tokens.weight': expected shape");
  convert_fails(with_config("layers", {{"num_hidden_layers", 100000000}}), "",
                "num_hidden_layers = 100000000 is outside 1..1024");
  convert_fails(with_config("inter", {{"intermediate_size", int64_t{1} << 62}}), "",
                "intermediate_size");
  convert_fails(with_config("gelu", {{"hidden_act", "gelu"}}), "", "hidden_act \"gelu\"");
  CliRun r = cli("generate " + with_config("gelu2", {{"hidden_act", "gelu"}}) +
                 " --tokens 1,2 --print-ids");
  expect_error(r, "hidden_act");
  EXPECT_EQ(r.out, "");
}

TEST_F(CliConvert, UnknownArchitecture) {
  std::string d = copy_src("bad_arch");
  std::string cfg = read_all(d + "/config.json");
  size_t at = cfg.find("LlamaForCausalLM");
  cfg.replace(at, 16, "GPT2LMHeadModel");
  write_all(d + "/config.json", cfg);
  convert_fails(d, "", "unknown architecture 'GPT2LMHeadModel'");
  CliRun i = cli("inspect " + d);
  expect_error(i, "config.json");
}

TEST_F(CliConvert, InvalidPatternAndFlagValues) {
  for (const char* p : {"7:8", "2:3", "0:4", "2:18", "abc", "6-8", "6:", ":8", "2_8"})
    convert_fails(src(), std::string("--pattern ") + p, "--pattern");
  convert_fails(src(), "--quant int4", "--quant");
  convert_fails(src(), "--prune random", "--prune");
  convert_fails(src(), "--prune wanda", "--norms");
  convert_fails(src(), "--prune wanda --norms " + root() + "/missing.safetensors",
                "missing.safetensors");
  convert_fails(src(), "--max-shard-size 4XB", "4XB");
  convert_fails(src(), "--max-shard-size ''", "--max-shard-size: empty value");
  convert_fails(src(), "--export-dense-pruned ''", "--export-dense-pruned: empty value");
  convert_fails(src(), "--calib-tokens -5", "--calib-tokens");
  convert_fails(src(), "--threads 0", "--threads");
  CliRun r = cli("synth --arch gpt5 --out " + root() + "/never");
  expect_error(r, "'gpt5'");
  expect_no_output(root() + "/never");
}

TEST_F(CliConvert, OutputExistsNeedsForce) {
  std::string out = root() + "/exists";
  fs::remove_all(out);
  fs::create_directories(out);
  write_all(out + "/keep.txt", "user data");
  uint64_t before = tree_hash(out);
  CliRun r = cli("convert " + src() + " --out " + out);
  expect_error(r, "exists (use --force");
  EXPECT_EQ(tree_hash(out), before) << "existing output touched without --force";
  CliRun s = cli("synth --arch tiny-qwen2 --out " + out);
  expect_error(s, "exists (use --force");
  CliRun f = cli("convert " + src() + " --out " + out + " --force");
  ASSERT_EQ(f.rc, 0) << f.err;
  EXPECT_FALSE(fs::exists(out + "/keep.txt"));
  EXPECT_TRUE(fs::exists(out + "/slidesparse_config.json"));
  expect_no_output(out + "-nothing");  // no temp/old siblings left
  for (auto& e : fs::directory_iterator(root()))
    EXPECT_EQ(e.path().filename().string().find(".exists."), std::string::npos)
        << e.path().filename();
}

TEST_F(CliConvert, UnwritableOutput) {
  std::string file = root() + "/a_file";
  write_all(file, "x");
  uint64_t before = tree_hash(src());
  CliRun r = cli("convert " + src() + " --out " + file + "/sub");
  expect_error(r, file + "/sub");
  EXPECT_EQ(tree_hash(src()), before);
  CliRun r2 = cli("convert " + src() + " --out /proc/slidesparse_out");
  expect_error(r2, "/proc/slidesparse_out");
  CliRun s = cli("synth --arch tiny-llama --out " + file + "/sub");
  expect_error(s, file + "/sub");
}

TEST_F(CliConvert, InputEqualToOutput) {
  std::string d = copy_src("self");
  uint64_t before = tree_hash(d);
  // --out == input (even with --force), --out inside the input, --out containing the input.
  for (const std::string& out : {d, d + "/", d + "/inner", root()}) {
    CliRun r = cli("convert " + d + " --out " + out + " --force");
    expect_error(r, out == root() ? "contains the input" : "is the input");
    EXPECT_EQ(tree_hash(d), before) << "input modified by --out " << out;
  }
  EXPECT_FALSE(fs::exists(d + "/inner"));
  std::string out = root() + "/exp_same";
  fs::remove_all(out);
  CliRun r = cli("convert " + d + " --out " + out + " --export-dense-pruned " + out);
  expect_error(r, "--export-dense-pruned");
  expect_no_output(out);
  for (const std::string& dp : {out + "/dense", root() + "/exp_parent"}) {
    const std::string o = dp == out + "/dense" ? out : dp + "/out";
    CliRun in = cli("convert " + d + " --out " + o + " --export-dense-pruned " + dp);
    expect_error(in, "must be separate directories (neither the same nor one inside the other)");
    expect_no_output(o);
    expect_no_output(dp);
  }
  CliRun e = cli("convert " + d + " --out " + out + " --export-dense-pruned " + d + " --force");
  expect_error(e, "is the input");
  expect_no_output(out);
  EXPECT_EQ(tree_hash(d), before);
}

TEST_F(CliConvert, InspectRejectsACorruptedMask) {
  std::string out = root() + "/corrupt";
  fs::remove_all(out);
  ASSERT_EQ(cli("convert " + src() + " --out " + out + " --pattern 6:8").rc, 0);
  std::string p = out + "/model.safetensors";
  size_t off = data_offset(p, "model.layers.1.mlp.up_proj.nm_mask");
  std::string raw = read_all(p);
  raw[off + 5] = static_cast<char>(0x0f);  // popcount 4 != 6
  write_all(p, raw);
  CliRun i = cli("inspect " + out);
  expect_error(i, "model.layers.1.mlp.up_proj");
  EXPECT_NE(i.out.find("FAILED"), std::string::npos);
}

TEST_F(CliConvert, WandaWithNormsFile) {
  auto cfg = slidesparse::model_config_load(src() + "/config.json");
  ASSERT_TRUE(cfg.ok());
  auto lins = slidesparse::model_linears(*cfg);
  auto write_norms = [&](const std::string& path, int64_t k_delta) {
    std::vector<slidesparse::TensorInfo> specs;
    for (auto& l : lins)
      specs.push_back({l.weight_name() + ".act_norm",
                       slidesparse::DType::kF32,
                       {l.K + (l.kind == slidesparse::LinearKind::kDown ? k_delta : 0)}});
    auto w = slidesparse::SafetensorsWriter::create(path, specs);
    ASSERT_TRUE(w.ok());
    for (auto& sp : specs) {
      std::vector<float> v(static_cast<size_t>(sp.shape[0]));
      for (size_t k = 0; k < v.size(); ++k) v[k] = 0.5f + static_cast<float>((k * 37) % 11);
      ASSERT_TRUE(w->write(sp.name, v.data(), v.size() * 4).ok());
    }
    ASSERT_TRUE(w->finish().ok());
  };
  std::string good = root() + "/norms.safetensors", bad = root() + "/norms_bad.safetensors";
  write_norms(good, 0);
  write_norms(bad, 1);
  std::string out = root() + "/wanda";
  fs::remove_all(out);
  CliRun r = cli("convert " + src() + " --out " + out + " --prune wanda --norms " + good +
                 " --quant fp8 --pattern 8:10");
  ASSERT_EQ(r.rc, 0) << r.err;
  CliRun i = cli("inspect " + out + " --json");
  ASSERT_EQ(i.rc, 0) << i.err;
  json j = json::parse(i.out);
  EXPECT_EQ(j["prune"], "wanda");
  EXPECT_EQ(j["quant"], "fp8");
  EXPECT_TRUE(j["totals"]["all_verified"].get<bool>());
  convert_fails(src(), "--prune wanda --norms " + bad,
                "model.layers.0.mlp.down_proj.weight.act_norm");
  convert_fails(src(), "--norms " + good, "--norms is only used with --prune wanda");
}

// --version names what the binary was built with (its GEMM backends change every W8A8 timing):
// the flavour this test binary's own build flags say, on one line, exit code 0.
TEST(CliVersion, NamesTheBuild) {
  fs::create_directories(root());
#if defined(SLIDESPARSE_WITH_CUTLASS)
  const std::string want = "CUDA backend, CUTLASS sm90a GEMMs";
#elif defined(SLIDESPARSE_WITH_CUDA)
  const std::string want = "CUDA backend, library GEMMs only";
#else
  const std::string want = "CPU only";
#endif
  CliRun r = cli("--version");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.rfind(std::string("slidesparse " SLIDESPARSE_VERSION " (") + want, 0), 0u)
      << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}
