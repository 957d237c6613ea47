// Safetensors reader/writer and sharded directories: round trips with fresh random data, and every
// malformed-file case the reader must reject with one line naming the file and the tensor.
#include "slidesparse/safetensors.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

namespace ss = slidesparse;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string tmp_dir(const std::string& name) {
  std::string d = std::string(SS_TEST_TMP) + "/safetensors/" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_all(const std::string& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(s.data(), static_cast<std::streamsize>(s.size()));
}

// A raw safetensors file from a header JSON and a data buffer of `data_bytes` random bytes.
std::string raw_file(const std::string& header, size_t data_bytes, uint64_t hlen_override = 0) {
  std::string out(8, '\0');
  uint64_t hl = hlen_override ? hlen_override : header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(hl >> (8 * i));
  out += header;
  std::mt19937 rng(7);
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(static_cast<char>(rng()));
  return out;
}

ss::Status open_raw(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::string p = dir + "/" + name;
  write_all(p, bytes);
  auto f = ss::SafetensorsFile::open(p);
  return f.ok() ? ss::Status::Ok() : f.status();
}

struct Case {
  const char* what;
  std::string bytes;
  const char* expect_in_message;
  ss::StatusCode code = ss::StatusCode::kFormatError;
};

}  // namespace

TEST(Safetensors, RoundTripDtypesChunksAndAlignment) {
  std::string d = tmp_dir("roundtrip");
  std::mt19937_64 rng(std::random_device{}());
  std::vector<ss::TensorInfo> specs = {
      {"a.u8", ss::DType::kU8, {3, 5}},      {"b.bf16", ss::DType::kBF16, {7, 19}},
      {"c.f32", ss::DType::kF32, {111}},     {"d.i8", ss::DType::kI8, {1, 1, 13}},
      {"e.empty", ss::DType::kF16, {0, 4}},  {"f.u16", ss::DType::kU16, {9}},
      {"g.f8", ss::DType::kF8E4M3, {2, 33}}, {"h.scalar", ss::DType::kF32, {}},
  };
  std::map<std::string, std::string> data;
  for (auto& s : specs) {
    std::string b(s.nbytes(), '\0');
    for (auto& c : b) c = static_cast<char>(rng());
    data[s.name] = b;
  }
  std::string path = d + "/x.safetensors";
  {
    auto w = ss::SafetensorsWriter::create(path, specs, {{"format", "pt"}, {"k", "v"}});
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    // Write in reverse order, the bf16 tensor in three uneven chunks.
    for (auto it = specs.rbegin(); it != specs.rend(); ++it) {
      const std::string& b = data[it->name];
      if (it->name == "b.bf16") {
        ASSERT_TRUE(w->write(it->name, b.data() + 100, b.size() - 100, 100).ok());
        ASSERT_TRUE(w->write(it->name, b.data(), 1, 0).ok());
        ASSERT_TRUE(w->write(it->name, b.data() + 1, 99, 1).ok());
      } else {
        ASSERT_TRUE(w->write(it->name, b.data(), b.size()).ok());
      }
    }
    EXPECT_FALSE(ss::SafetensorsFile::open(path).ok()) << "visible before finish()";
    ASSERT_TRUE(w->finish().ok());
  }
  auto f = ss::SafetensorsFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ(f->names().size(), specs.size());
  EXPECT_EQ(f->metadata().at("k"), "v");
  for (auto& s : specs) {
    auto v = f->view(s.name);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->dtype, s.dtype) << s.name;
    EXPECT_EQ(v->shape, s.shape) << s.name;
    ASSERT_EQ(v->nbytes, data[s.name].size());
    EXPECT_EQ(0, std::memcmp(v->data, data[s.name].data(), v->nbytes)) << s.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v->data) % ss::dtype_size(s.dtype), 0u) << s.name;
    f->release(s.name);  // must not invalidate the view's contents
    EXPECT_EQ(0, std::memcmp(v->data, data[s.name].data(), v->nbytes)) << s.name;
  }
  // Layout compatible with the reference implementation: header padded to 8, data contiguous.
  std::string raw = read_all(path);
  uint64_t hl = 0;
  std::memcpy(&hl, raw.data(), 8);
  EXPECT_EQ((8 + hl) % 8, 0u);
  EXPECT_FALSE(f->view("nope").ok());
  // No temp files left behind.
  for (auto& e : fs::directory_iterator(d)) EXPECT_EQ(e.path().filename(), "x.safetensors");
}

TEST(Safetensors, WriterRejectsMisuseAndCleansUp) {
  std::string d = tmp_dir("writer");
  std::string path = d + "/w.safetensors";
  {
    auto w = ss::SafetensorsWriter::create(path, {{"t", ss::DType::kF32, {4}}});
    ASSERT_TRUE(w.ok());
    float v[4] = {1, 2, 3, 4};
    EXPECT_FALSE(w->write("other", v, 16).ok());
    EXPECT_FALSE(w->write("t", v, 16, 4).ok());  // past the end
    ASSERT_TRUE(w->write("t", v, 8).ok());
    ss::Status s = w->finish();  // half written
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("'t'"), std::string::npos) << s.message();
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(fs::is_empty(d)) << "temp file left behind";
  auto dup = ss::SafetensorsWriter::create(
      path, {{"t", ss::DType::kF32, {4}}, {"t", ss::DType::kF32, {4}}});
  EXPECT_FALSE(dup.ok());
  auto bad_dir = ss::SafetensorsWriter::create(d + "/missing/w.safetensors", {});
  EXPECT_EQ(bad_dir.status().code(), ss::StatusCode::kIoError);
}

TEST(Safetensors, MalformedFilesAreRejectedWithOneLine) {
  std::string d = tmp_dir("malformed");
  auto hdr = [](json j) { return j.dump(); };
  json ok1 = {{"w", {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {0, 16}}}}};
  std::vector<Case> cases = {
      {"empty file", "", "at least 8"},
      {"short file", std::string(5, '\x01'), "at least 8"},
      {"header length past end", raw_file(hdr(ok1), 16, 1u << 20), "past the end of the file"},
      {"huge header length", raw_file(hdr(ok1), 16, ~uint64_t{0}), "past the end of the file"},
      {"bad json", raw_file("{\"w\": [", 0), "not valid JSON"},
      {"not an object", raw_file("[1,2]", 0), "not a JSON object"},
      {"duplicate",
       raw_file("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                2),
       "'w' appears twice"},
      {"unknown dtype",
       raw_file(hdr({{"w", {{"dtype", "Q4_K"}, {"shape", {4}}, {"data_offsets", {0, 4}}}}}), 4),
       "unsupported dtype 'Q4_K'", ss::StatusCode::kUnsupported},
      {"negative dim",
       raw_file(hdr({{"w", {{"dtype", "U8"}, {"shape", {-4}}, {"data_offsets", {0, 4}}}}}), 4),
       "non-negative integers"},
      {"float dim",
       raw_file(hdr({{"w", {{"dtype", "U8"}, {"shape", {2.5}}, {"data_offsets", {0, 4}}}}}), 4),
       "non-negative integers"},
      {"missing dtype", raw_file(hdr({{"w", {{"shape", {4}}, {"data_offsets", {0, 4}}}}}), 4),
       "'dtype'"},
      {"offsets not a pair",
       raw_file(hdr({{"w", {{"dtype", "U8"}, {"shape", {4}}, {"data_offsets", {0}}}}}), 4),
       "[begin, end]"},
      {"begin > end",
       raw_file(hdr({{"w", {{"dtype", "U8"}, {"shape", {0}}, {"data_offsets", {4, 0}}}}}), 4),
       "begin > end"},
      {"end past data",
       raw_file(hdr({{"w", {{"dtype", "U8"}, {"shape", {8}}, {"data_offsets", {0, 8}}}}}), 4),
       "past the end of the data"},
      {"nbytes mismatch",
       raw_file(hdr({{"w", {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {0, 8}}}}}), 8),
       "needs 16 bytes"},
      {"overflowing shape",
       raw_file(
           hdr({{"w",
                 {{"dtype", "F32"}, {"shape", {uint64_t{1} << 62, 8}}, {"data_offsets", {0, 8}}}}}),
           8),
       "needs"},
      {"overlap",
       raw_file(hdr({{"a", {{"dtype", "U8"}, {"shape", {4}}, {"data_offsets", {0, 4}}}},
                     {"b", {{"dtype", "U8"}, {"shape", {4}}, {"data_offsets", {2, 6}}}}}),
                6),
       "overlaps"},
      {"hole",
       raw_file(hdr({{"a", {{"dtype", "U8"}, {"shape", {2}}, {"data_offsets", {0, 2}}}},
                     {"b", {{"dtype", "U8"}, {"shape", {2}}, {"data_offsets", {4, 6}}}}}),
                6),
       "hole"},
      {"trailing bytes", raw_file(hdr(ok1), 20), "trailing bytes"},
      {"metadata not strings", raw_file(hdr({{"__metadata__", {{"a", 1}}}}), 0), "__metadata__"},
  };
  for (const Case& c : cases) {
    ss::Status s = open_raw(d, "bad.safetensors", c.bytes);
    ASSERT_FALSE(s.ok()) << c.what;
    EXPECT_EQ(s.code(), c.code) << c.what << ": " << s.message();
    EXPECT_NE(s.message().find(c.expect_in_message), std::string::npos)
        << c.what << ": " << s.message();
    EXPECT_NE(s.message().find("bad.safetensors"), std::string::npos) << c.what;
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << c.what;
  }
  auto missing = ss::SafetensorsFile::open(d + "/absent.safetensors");
  EXPECT_EQ(missing.status().code(), ss::StatusCode::kNotFound);
}

TEST(Safetensors, EveryTruncationAndHeaderByteFlipIsHandled) {
  std::string d = tmp_dir("fuzz");
  std::string path = d + "/good.safetensors";
  {
    auto w = ss::SafetensorsWriter::create(
        path,
        {{"x", ss::DType::kBF16, {3, 4}}, {"y", ss::DType::kU8, {5}}, {"z", ss::DType::kF32, {2}}});
    ASSERT_TRUE(w.ok());
    std::string b(64, '\x5a');
    ASSERT_TRUE(w->write("x", b.data(), 24).ok());
    ASSERT_TRUE(w->write("y", b.data(), 5).ok());
    ASSERT_TRUE(w->write("z", b.data(), 8).ok());
    ASSERT_TRUE(w->finish().ok());
  }
  std::string good = read_all(path);
  ASSERT_TRUE(ss::SafetensorsFile::open(path).ok());
  for (size_t len = 0; len < good.size(); ++len) {
    ss::Status s = open_raw(d, "t.safetensors", good.substr(0, len));
    EXPECT_FALSE(s.ok()) << "truncated to " << len << " bytes was accepted";
  }
  // Flip each header byte: never a crash; whatever opens must stay within the file.
  uint64_t hl = 0;
  std::memcpy(&hl, good.data(), 8);
  std::mt19937 rng(std::random_device{}());
  for (size_t i = 0; i < 8 + hl; ++i) {
    std::string b = good;
    b[i] = static_cast<char>(b[i] ^ (1 + rng() % 255));
    std::string p = d + "/f.safetensors";
    write_all(p, b);
    auto f = ss::SafetensorsFile::open(p);
    if (!f.ok()) continue;
    for (const auto& n : f->names()) {
      auto v = f->view(n);
      ASSERT_TRUE(v.ok());
      volatile uint8_t sink = 0;
      for (size_t k = 0; k < v->nbytes; ++k) sink ^= static_cast<const uint8_t*>(v->data)[k];
      (void)sink;
    }
  }
}

TEST(Safetensors, ShardedDirectoryRoundTrip) {
  std::string d = tmp_dir("sharded");
  std::mt19937_64 rng(std::random_device{}());
  std::vector<ss::TensorInfo> specs;
  std::map<std::string, std::vector<uint16_t>> data;
  for (int i = 0; i < 9; ++i) {
    ss::TensorInfo t{"layer." + std::to_string(i) + ".w", ss::DType::kBF16, {10 + i, 16}};
    specs.push_back(t);
    auto& v = data[t.name];
    v.resize(static_cast<size_t>(ss::shape_numel(t.shape)));
    for (auto& x : v) x = static_cast<uint16_t>(rng());
  }
  auto w = ss::ShardedWriter::create(d, specs, 1000);  // ~3 tensors per shard
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  EXPECT_GT(w->shards(), 2u);
  for (auto& s : specs) ASSERT_TRUE(w->write(s.name, data[s.name].data(), s.nbytes()).ok());
  ASSERT_TRUE(w->finish().ok());
  EXPECT_TRUE(fs::exists(d + "/model.safetensors.index.json"));
  EXPECT_TRUE(
      fs::exists(d + "/model-00001-of-0000" + std::to_string(w->shards()) + ".safetensors"));
  auto st = ss::TensorStore::open_dir(d);
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  ASSERT_EQ(st->names().size(), specs.size());
  for (auto& s : specs) {
    auto v = st->view(s.name);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(0, std::memcmp(v->data, data[s.name].data(), s.nbytes()));
  }
  json idx = json::parse(read_all(d + "/model.safetensors.index.json"));
  size_t total = 0;
  for (auto& s : specs) total += s.nbytes();
  EXPECT_EQ(idx["metadata"]["total_size"].get<size_t>(), total);

  // A bad index: a shard name with a path, a tensor mapped to the wrong shard, a missing tensor.
  std::string orig = read_all(d + "/model.safetensors.index.json");
  auto with_index = [&](json j) {
    write_all(d + "/model.safetensors.index.json", j.dump());
    auto r = ss::TensorStore::open_dir(d);
    return r.ok() ? ss::Status::Ok() : r.status();
  };
  json bad = idx;
  bad["weight_map"]["layer.0.w"] = "../model-00001-of-00003.safetensors";
  EXPECT_NE(with_index(bad).message().find("plain file name"), std::string::npos);
  bad = idx;
  bad["weight_map"]["ghost"] = bad["weight_map"]["layer.0.w"];
  EXPECT_NE(with_index(bad).message().find("'ghost'"), std::string::npos);
  bad = idx;
  bad["weight_map"].erase("layer.4.w");
  EXPECT_NE(with_index(bad).message().find("'layer.4.w'"), std::string::npos);
  write_all(d + "/model.safetensors.index.json", "{not json");
  EXPECT_FALSE(ss::TensorStore::open_dir(d).ok());
  write_all(d + "/model.safetensors.index.json", orig);
  EXPECT_TRUE(ss::TensorStore::open_dir(d).ok());

  // Single file when it fits.
  std::string d1 = tmp_dir("single");
  auto w1 = ss::ShardedWriter::create(d1, specs, 1u << 20);
  ASSERT_TRUE(w1.ok());
  EXPECT_EQ(w1->shards(), 1u);
  for (auto& s : specs) ASSERT_TRUE(w1->write(s.name, data[s.name].data(), s.nbytes()).ok());
  ASSERT_TRUE(w1->finish().ok());
  EXPECT_TRUE(fs::exists(d1 + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(d1 + "/model.safetensors.index.json"));
  EXPECT_EQ(ss::TensorStore::open_dir(d + "/nope").status().code(), ss::StatusCode::kNotFound);
}

TEST(Safetensors, ParseByteSize) {
  EXPECT_EQ(*ss::parse_byte_size("4GB"), 4000000000u);
  EXPECT_EQ(*ss::parse_byte_size("2GiB"), size_t{2} << 30);
  EXPECT_EQ(*ss::parse_byte_size("500mb"), 500000000u);
  EXPECT_EQ(*ss::parse_byte_size("1.5KiB"), 1536u);
  EXPECT_EQ(*ss::parse_byte_size("123"), 123u);
  for (const char* bad : {"", "GB", "4XB", "-1GB", "0", "1e3", "4 GB"})
    EXPECT_FALSE(ss::parse_byte_size(bad).ok()) << bad;
  for (const char* bad : {"0", "0.5", "0GB", "2000000000GB"})
    EXPECT_NE(ss::parse_byte_size(bad).status().message().find("at least 1 byte"),
              std::string::npos)
        << bad;
}
