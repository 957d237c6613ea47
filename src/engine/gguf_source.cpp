// GGUF as a WeightSource for `convert`.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "slidesparse/dtype.h"
#include "slidesparse/gguf.h"

namespace slidesparse {
namespace {

class GgufSource final : public WeightSource {
 public:
  GgufSource(GgufFile f, ModelConfig c, std::string tmp)
      : f_(std::move(f)), cfg_(std::move(c)), tmp_(std::move(tmp)) {}
  ~GgufSource() override {
    std::error_code ec;
    std::filesystem::remove_all(tmp_, ec);
  }
  std::string description() const override { return f_.path(); }
  const ModelConfig& config() const override { return cfg_; }
  std::string config_json() const override { return model_config_to_json(cfg_); }
  std::vector<std::string> aux_files() const override { return {tmp_ + "/tokenizer.json"}; }
  std::vector<std::string> input_paths() const override { return {f_.path()}; }
  std::vector<TensorInfo> tensors() const override { return model_tensors(cfg_); }
  Expected<SourceTensor> read(const std::string& name) const override {
    SS_ASSIGN_OR_RETURN(std::vector<float> w, gguf_read_hf_tensor(f_, cfg_, name));
    auto buf = std::make_shared<std::vector<uint16_t>>(w.size());
    SS_RETURN_IF_ERROR(
        convert_from_f32(DType::kBF16, w.data(), buf->data(), static_cast<int64_t>(w.size())));
    Shape shape;
    for (const TensorInfo& t : model_tensors(cfg_))
      if (t.name == name) shape = t.shape;
    if (shape_numel(shape) != static_cast<int64_t>(w.size())) {
      return format_error("GGUF '" + f_.path() + "': tensor for '" + name + "' has " +
                          std::to_string(w.size()) + " elements, expected shape " +
                          shape_str(shape));
    }
    SourceTensor st;
    st.view = {DType::kBF16, shape, buf->data(), buf->size() * sizeof(uint16_t)};
    st.hold = buf;
    return st;
  }

 private:
  GgufFile f_;
  ModelConfig cfg_;
  std::string tmp_;
};

Status write_tokenizer_json(const GgufFile& f, const std::string& path) {
  const GgufValue* toks = f.find("tokenizer.ggml.tokens");
  const GgufValue* merges = f.find("tokenizer.ggml.merges");
  if (!toks || !merges || toks->kind != GgufValue::Kind::kArray ||
      merges->kind != GgufValue::Kind::kArray) {
    return format_error("GGUF '" + f.path() + "': missing tokenizer.ggml.tokens/merges");
  }
  nlohmann::json j;
  j["version"] = "1.0";
  nlohmann::json vocab = nlohmann::json::object(), added = nlohmann::json::array();
  const GgufValue* types = f.find("tokenizer.ggml.token_type");
  for (size_t i = 0; i < toks->strs.size(); ++i) {
    vocab[toks->strs[i]] = i;
    if (types && i < types->nums.size() && (types->nums[i] == 3 || types->nums[i] == 4)) {
      added.push_back({{"id", i},
                       {"content", toks->strs[i]},
                       {"special", true},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false}});
    }
  }
  j["added_tokens"] = added;
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["normalizer"] = nullptr;
  j["post_processor"] = nullptr;
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", merges->strs}};
  nlohmann::json bytelevel = {{"type", "ByteLevel"},
                              {"add_prefix_space", false},
                              {"trim_offsets", true},
                              {"use_regex", true}};
  const GgufValue* pre = f.find("tokenizer.ggml.pre");
  if (pre && pre->str == "smollm") {
    j["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, bytelevel}}};
  } else {
    j["pre_tokenizer"] = bytelevel;
  }
  j["decoder"] = {{"type", "ByteLevel"},
                  {"add_prefix_space", true},
                  {"trim_offsets", true},
                  {"use_regex", true}};
  std::ofstream o(path);
  o << j.dump();
  if (!o) return io_error("cannot write '" + path + "'");
  return Status::Ok();
}

}  // namespace

Expected<std::unique_ptr<WeightSource>> open_gguf_source(const std::string& path) {
  SS_ASSIGN_OR_RETURN(GgufFile f, GgufFile::open(path));
  SS_ASSIGN_OR_RETURN(ModelConfig c, gguf_model_config(f));
  c.dtype = DType::kBF16;
  char tmpl[] = "/tmp/slidesparse_gguf_XXXXXX";
  if (!::mkdtemp(tmpl)) return io_error("cannot create a temporary directory in /tmp");
  std::string tmp = tmpl;
  Status s = write_tokenizer_json(f, tmp + "/tokenizer.json");
  if (!s.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
    return s;
  }
  return std::unique_ptr<WeightSource>(
      std::make_unique<GgufSource>(std::move(f), std::move(c), tmp));
}

}  // namespace slidesparse
