// SlideSparse checkpoints: convert (streamed, bounded memory), load, inspect.
#include "slidesparse/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/fs_util.h"

namespace slidesparse {
namespace {

using json = nlohmann::json;

int resolve_threads(int t) {
  return t > 0 ? t : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

// Runs f(i) for i in [0, n) on `threads` threads; returns the first error.
Status parallel_for(int64_t n, int threads, const std::function<Status(int64_t)>& f) {
  threads = static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(n, 1)));
  if (threads <= 1) {
    for (int64_t i = 0; i < n; ++i) SS_RETURN_IF_ERROR(f(i));
    return Status::Ok();
  }
  std::atomic<int64_t> next{0};
  std::mutex mu;
  Status first;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int64_t i; (i = next.fetch_add(1)) < n;) {
        Status s = f(i);
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (first.ok()) first = s;
          next.store(n);
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  return first;
}

// ---- Hugging Face directory source
// ----------------------------------------------------------------

class HfSource final : public WeightSource {
 public:
  std::string dir_;
  ModelConfig config_;
  std::string config_text_;
  TensorStore store_;
  std::vector<std::string> aux_;

  std::string description() const override { return dir_; }
  const ModelConfig& config() const override { return config_; }
  std::string config_json() const override { return config_text_; }
  std::vector<std::string> aux_files() const override { return aux_; }
  std::vector<std::string> input_paths() const override { return {dir_}; }
  std::vector<TensorInfo> tensors() const override {
    std::vector<TensorInfo> out;
    for (const auto& n : store_.names()) out.push_back(*store_.info(n));
    return out;
  }
  Expected<SourceTensor> read(const std::string& name) const override {
    SS_ASSIGN_OR_RETURN(TensorView v, store_.view(name));
    return SourceTensor{v, nullptr};
  }
  void release(const std::string& name) const override { store_.release(name); }
};

const char* const kAuxFiles[] = {"generation_config.json",
                                 "tokenizer.json",
                                 "tokenizer_config.json",
                                 "special_tokens_map.json",
                                 "vocab.json",
                                 "merges.txt",
                                 "tokenizer.model",
                                 "added_tokens.json",
                                 "chat_template.jinja",
                                 "LICENSE",
                                 "README.md"};

}  // namespace

Expected<std::unique_ptr<WeightSource>> open_hf_source(const std::string& dir) {
  auto s = std::make_unique<HfSource>();
  s->dir_ = dir;
  if (!core::is_dir(dir)) {
    if (!core::path_exists(dir)) return not_found("input '" + dir + "': directory not found");
    return invalid_argument("input '" + dir + "': expected a Hugging Face checkpoint directory");
  }
  std::string cfg_path = core::path_join(dir, "config.json");
  SS_ASSIGN_OR_RETURN(s->config_text_, core::read_text_file(cfg_path));
  SS_ASSIGN_OR_RETURN(s->config_, model_config_parse(s->config_text_, cfg_path));
  SS_ASSIGN_OR_RETURN(s->store_, TensorStore::open_dir(dir));
  for (const char* f : kAuxFiles) {
    std::string p = core::path_join(dir, f);
    if (core::path_exists(p)) s->aux_.push_back(p);
  }
  return std::unique_ptr<WeightSource>(std::move(s));
}

Expected<std::map<std::string, std::vector<float>>> load_act_norms(
    const std::string& path, const std::vector<LinearSpec>& linears) {
  SS_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::open(path));
  std::map<std::string, std::vector<float>> out;
  for (const LinearSpec& l : linears) {
    std::string name = l.weight_name() + ".act_norm";
    if (!f.has(name) && f.has(l.name + ".act_norm")) name = l.name + ".act_norm";
    if (!f.has(name))
      return not_found("norms '" + path + "': no tensor '" + l.weight_name() + ".act_norm'");
    SS_ASSIGN_OR_RETURN(TensorView v, f.view(name));
    Status s = check_tensor(name, v, DType::kF32, {l.K});
    if (!s.ok()) return format_error("norms '" + path + "': " + s.message());
    std::vector<float> n(static_cast<size_t>(l.K));
    std::memcpy(n.data(), v.data, n.size() * sizeof(float));
    for (int64_t k = 0; k < l.K; ++k)
      if (!std::isfinite(n[k]) || n[k] < 0)
        return format_error("norms '" + path + "': tensor '" + name + "' element " +
                            std::to_string(k) + " is " + std::to_string(n[k]) +
                            ", expected a finite value >= 0");
    out[l.name] = std::move(n);
  }
  return out;
}

// ---- convert
// --------------------------------------------------------------------------------------

namespace {

// nm_compress splits rows across threads itself (prune and quantization are per row, so the result
// does not depend on the thread count) and names rows of the whole tensor in its errors.
Expected<NmTensor> compress_rows(const float* w, int64_t N, int64_t K, const ConvertOptions& opt,
                                 const float* norms, DType float_dtype, int threads) {
  return nm_compress(w, N, K, opt.pattern, opt.prune, norms, opt.quant, float_dtype, threads);
}

struct Progress {
  bool on = false, inline_ = false;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  void tick(size_t i, size_t n, const std::string& name, size_t bytes) const {
    if (!on) return;
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "%s[convert] tensor %zu/%zu %.2f GB read %.2f GB/s %s%s",
                 inline_ ? "\r" : "", i, n, bytes / 1e9, s > 0 ? bytes / 1e9 / s : 0.0,
                 name.c_str(), inline_ ? "\033[K" : "\n");
    if (inline_ && i == n) std::fputc('\n', stderr);
  }
};

}  // namespace

Status convert_checkpoint(const WeightSource& src, const ConvertOptions& opt,
                          ConvertReport* report) {
  const auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& cfg = src.config();
  const std::vector<LinearSpec> linears = model_linears(cfg);
  const std::vector<TensorInfo> tensors = src.tensors();
  const int threads = resolve_threads(opt.threads);
  SS_RETURN_IF_ERROR(Pattern::validate(opt.pattern.n, opt.pattern.m));

  // Validate everything before creating any output.
  std::map<std::string, int64_t> lin_of;  // weight name -> linear index
  for (size_t i = 0; i < linears.size(); ++i)
    lin_of[linears[i].weight_name()] = static_cast<int64_t>(i);
  std::map<std::string, const TensorInfo*> by_name;
  for (const TensorInfo& t : tensors) by_name[t.name] = &t;
  {
    std::vector<std::string> names;
    for (const TensorInfo& t : tensors) names.push_back(t.name);
    if (int64_t i = first_extra_layer_name(names, cfg); i >= 0)
      return format_error("input '" + src.description() + "': tensor '" + names[i] +
                          "' is past the last layer of its config (num_hidden_layers = " +
                          std::to_string(cfg.num_layers) + ")");
  }
  DType model_dtype = DType::kBF16;
  bool first = true;
  for (const LinearSpec& l : linears) {
    auto it = by_name.find(l.weight_name());
    if (it == by_name.end())
      return not_found("input '" + src.description() + "': missing tensor '" + l.weight_name() +
                       "' (expected by " + model_arch_name(cfg.arch) + " config)");
    const TensorInfo& t = *it->second;
    if (t.dtype != DType::kBF16 && t.dtype != DType::kF16)
      return unsupported("input '" + src.description() + "': tensor '" + t.name + "' has dtype " +
                         dtype_name(t.dtype) + ", expected BF16 or F16");
    if (t.shape != Shape{l.N, l.K})
      return format_error("input '" + src.description() + "': tensor '" + t.name +
                          "': expected shape " + shape_str({l.N, l.K}) + ", got " +
                          shape_str(t.shape));
    if (first) model_dtype = t.dtype;
    first = false;
    if (t.dtype != model_dtype)
      return unsupported("input '" + src.description() + "': tensor '" + t.name + "' has dtype " +
                         dtype_name(t.dtype) + ", the other linears " + dtype_name(model_dtype));
    if (opt.prune == PruneMethod::kWanda) {
      auto n = opt.act_norms.find(l.name);
      if (n == opt.act_norms.end())
        return invalid_argument("wanda: no activation norms for '" + l.name +
                                "' (give --norms FILE)");
      if (static_cast<int64_t>(n->second.size()) != l.K)
        return invalid_argument("wanda: activation norms for '" + l.name + "' have " +
                                std::to_string(n->second.size()) +
                                " values, expected K=" + std::to_string(l.K));
    }
  }
  // The other tensors the engine loads (embedding, norms, biases, lm_head): present, float, with
  // the config's shapes; they are copied as they are, so a fault here would surface only at load.
  for (const TensorInfo& want : model_tensors(cfg)) {
    if (lin_of.count(want.name)) continue;
    auto it = by_name.find(want.name);
    if (it == by_name.end())
      return not_found("input '" + src.description() + "': missing tensor '" + want.name +
                       "' (expected by " + model_arch_name(cfg.arch) + " config)");
    const TensorInfo& t = *it->second;
    if (t.dtype != DType::kBF16 && t.dtype != DType::kF16 && t.dtype != DType::kF32)
      return unsupported("input '" + src.description() + "': tensor '" + t.name + "' has dtype " +
                         dtype_name(t.dtype) + ", expected BF16, F16 or F32");
    if (t.shape != want.shape)
      return format_error("input '" + src.description() + "': tensor '" + t.name +
                          "': expected shape " + shape_str(want.shape) + ", got " +
                          shape_str(t.shape));
  }
  if (!opt.export_dense_pruned.empty() &&
      (opt.export_dense_pruned == opt.out || core::same_path(opt.export_dense_pruned, opt.out) ||
       core::path_within(opt.export_dense_pruned, opt.out) ||
       core::path_within(opt.out, opt.export_dense_pruned)))
    return invalid_argument("--export-dense-pruned '" + opt.export_dense_pruned + "' and --out '" +
                            opt.out +
                            "' must be separate directories (neither the same nor one inside "
                            "the other)");

  const Pattern p = opt.pattern;
  const bool quant = opt.quant != QuantMode::kNone;
  const DType value_dtype = quant ? quant_storage_dtype(opt.quant) : model_dtype;
  const DType mask_dtype = p.m <= 8 ? DType::kU8 : DType::kU16;
  std::vector<TensorInfo> out_tensors;
  for (const TensorInfo& t : tensors) {
    auto li = lin_of.find(t.name);
    if (li == lin_of.end()) {
      out_tensors.push_back(t);
      continue;
    }
    const LinearSpec& l = linears[li->second];
    out_tensors.push_back({l.name + ".nm_values", value_dtype, {l.N, p.blocks(l.K) * p.n}});
    out_tensors.push_back({l.name + ".nm_mask", mask_dtype, {l.N, p.blocks(l.K)}});
    if (quant) out_tensors.push_back({l.name + ".weight_scale", DType::kF32, {l.N}});
  }

  std::vector<std::string> inputs = src.input_paths();
  SS_ASSIGN_OR_RETURN(core::OutputDir out, core::OutputDir::create(opt.out, opt.force, inputs));
  std::optional<core::OutputDir> dense_out;
  std::optional<ShardedWriter> dense_w;
  if (!opt.export_dense_pruned.empty()) {
    SS_ASSIGN_OR_RETURN(core::OutputDir d,
                        core::OutputDir::create(opt.export_dense_pruned, opt.force, inputs));
    dense_out.emplace(std::move(d));
  }
  SS_ASSIGN_OR_RETURN(ShardedWriter w,
                      ShardedWriter::create(out.path(), out_tensors, opt.max_shard_bytes));
  if (dense_out) {
    SS_ASSIGN_OR_RETURN(ShardedWriter dw,
                        ShardedWriter::create(dense_out->path(), tensors, opt.max_shard_bytes));
    dense_w.emplace(std::move(dw));
  }

  // Side files.
  json sc;
  sc["format_version"] = 1;
  sc["pattern"] = p.str();
  sc["prune"] = prune_method_name(opt.prune);
  sc["quant"] = quant_mode_name(opt.quant);
  json layers = json::object();
  for (const LinearSpec& l : linears) layers[l.name] = {{"shape", {l.N, l.K}}};
  sc["layers"] = layers;
  json source = {{"path", src.description()},
                 {"architecture", model_arch_name(cfg.arch)},
                 {"dtype", dtype_name(model_dtype)}};
  for (const auto& [k, v] : opt.source_info) source[k] = v;
  sc["source"] = source;
  std::vector<std::string> dirs = {out.path()};
  if (dense_out) dirs.push_back(dense_out->path());
  for (const std::string& d : dirs) {
    SS_RETURN_IF_ERROR(
        core::write_file_atomic(core::path_join(d, "config.json"), src.config_json()));
    for (const std::string& f : src.aux_files())
      SS_RETURN_IF_ERROR(core::copy_file_atomic(f, core::path_join(d, core::path_basename(f))));
  }
  SS_RETURN_IF_ERROR(core::write_file_atomic(core::path_join(out.path(), "slidesparse_config.json"),
                                             sc.dump(2) + "\n"));

  ConvertReport rep;
  Progress prog;
  prog.on = opt.progress;
  prog.inline_ = opt.progress && ::isatty(2);
  for (size_t ti = 0; ti < tensors.size(); ++ti) {
    const TensorInfo& t = tensors[ti];
    SS_ASSIGN_OR_RETURN(SourceTensor st, src.read(t.name));
    const TensorView& v = st.view;
    if (v.dtype != t.dtype || v.shape != t.shape || v.nbytes != t.nbytes())
      return internal_error("input '" + src.description() + "': tensor '" + t.name +
                            "' changed between listing and reading");
    auto li = lin_of.find(t.name);
    if (li == lin_of.end()) {
      // Copied through in chunks, dropping the source pages as we go (bounded resident set).
      constexpr size_t kCopyChunk = size_t{64} << 20;
      const auto* bytes = static_cast<const uint8_t*>(v.data);
      for (size_t off = 0; off < v.nbytes; off += kCopyChunk) {
        const size_t n = std::min(kCopyChunk, v.nbytes - off);
        SS_RETURN_IF_ERROR(w.write(t.name, bytes + off, n, off));
        if (dense_w) SS_RETURN_IF_ERROR(dense_w->write(t.name, bytes + off, n, off));
        src.release(t.name);
      }
    } else {
      const LinearSpec& l = linears[li->second];
      SS_ASSIGN_OR_RETURN(std::vector<float> wf, tensor_to_f32(t.name, v));
      src.release(t.name);
      const float* norms = nullptr;
      if (opt.prune == PruneMethod::kWanda) norms = opt.act_norms.at(l.name).data();
      auto nm = compress_rows(wf.data(), l.N, l.K, opt, norms, model_dtype, threads);
      if (!nm.ok())
        return Status(nm.status().code(), "tensor '" + t.name + "': " + nm.status().message());
      if (dense_w) {
        // Pruned (and dequantized) weight rounded to the model dtype.
        std::vector<float> d = nm_to_dense_f32(*nm);
        std::vector<uint8_t> bytes(t.nbytes());
        SS_RETURN_IF_ERROR(convert_from_f32(model_dtype, d.data(), bytes.data(), l.N * l.K));
        SS_RETURN_IF_ERROR(dense_w->write(t.name, bytes.data(), bytes.size()));
      }
      wf = {};
      SS_RETURN_IF_ERROR(w.write(l.name + ".nm_values", nm->values.data(), nm->values.size()));
      size_t mask_bytes = 0;
      if (mask_dtype == DType::kU8) {
        std::vector<uint8_t> m8(nm->masks.size());
        for (size_t i = 0; i < m8.size(); ++i) m8[i] = static_cast<uint8_t>(nm->masks[i]);
        SS_RETURN_IF_ERROR(w.write(l.name + ".nm_mask", m8.data(), m8.size()));
        mask_bytes = m8.size();
      } else {
        mask_bytes = nm->masks.size() * 2;
        SS_RETURN_IF_ERROR(w.write(l.name + ".nm_mask", nm->masks.data(), mask_bytes));
      }
      size_t scale_bytes = 0;
      if (quant) {
        scale_bytes = nm->scales.size() * 4;
        SS_RETURN_IF_ERROR(w.write(l.name + ".weight_scale", nm->scales.data(), scale_bytes));
      }
      rep.linears++;
      rep.linear_dense_bytes += static_cast<size_t>(l.N * l.K) * dtype_size(value_dtype);
      rep.linear_sparse_bytes += nm->values.size() + mask_bytes + scale_bytes;
    }
    rep.tensors++;
    rep.bytes_read += t.nbytes();
    src.release(t.name);
    prog.tick(ti + 1, tensors.size(), t.name, rep.bytes_read);
  }
  SS_RETURN_IF_ERROR(w.finish());
  rep.bytes_written = w.total_bytes();
  if (dense_w) SS_RETURN_IF_ERROR(dense_w->finish());
  SS_RETURN_IF_ERROR(out.commit());
  if (dense_out) SS_RETURN_IF_ERROR(dense_out->commit());
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (report) *report = rep;
  return Status::Ok();
}

// ---- load
// -----------------------------------------------------------------------------------------

Expected<Checkpoint> Checkpoint::open(const std::string& dir) {
  Checkpoint ck;
  ck.dir_ = dir;
  if (!core::is_dir(dir)) {
    if (!core::path_exists(dir)) return not_found("checkpoint '" + dir + "': directory not found");
    return invalid_argument("checkpoint '" + dir + "': not a directory");
  }
  SS_ASSIGN_OR_RETURN(ck.config_, model_config_load(core::path_join(dir, "config.json")));
  ck.linears_ = model_linears(ck.config_);
  SS_ASSIGN_OR_RETURN(ck.store_, TensorStore::open_dir(dir));
  if (int64_t i = first_extra_layer_name(ck.store_.names(), ck.config_); i >= 0)
    return format_error("checkpoint '" + dir + "': tensor '" + ck.store_.names()[i] +
                        "' is past the last layer of config.json (num_hidden_layers = " +
                        std::to_string(ck.config_.num_layers) + ")");
  std::string sc_path = core::path_join(dir, "slidesparse_config.json");
  if (core::path_exists(sc_path)) {
    ck.slidesparse_ = true;
    SS_ASSIGN_OR_RETURN(std::string text, core::read_text_file(sc_path));
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return format_error("'" + sc_path + "': not valid JSON");
    if (!j.is_object()) return format_error("'" + sc_path + "': not a JSON object");
    auto str = [&](const char* f) -> Expected<std::string> {
      auto it = j.find(f);
      if (it == j.end()) return format_error("'" + sc_path + "': missing field '" + f + "'");
      if (!it->is_string())
        return format_error("'" + sc_path + "': field '" + f + "' must be a string, got " +
                            it->dump());
      return it->get<std::string>();
    };
    if (j.value("format_version", 0) != 1)
      return unsupported("'" + sc_path + "': format_version " +
                         (j.count("format_version") ? j["format_version"].dump() : "missing") +
                         ", expected 1");
    SS_ASSIGN_OR_RETURN(std::string ps, str("pattern"));
    SS_ASSIGN_OR_RETURN(std::string pr, str("prune"));
    SS_ASSIGN_OR_RETURN(std::string qs, str("quant"));
    auto pat = Pattern::parse(ps);
    if (!pat.ok()) return format_error("'" + sc_path + "': " + pat.status().message());
    auto prm = prune_method_parse(pr);
    if (!prm.ok()) return format_error("'" + sc_path + "': " + prm.status().message());
    auto qm = quant_mode_parse(qs);
    if (!qm.ok()) return format_error("'" + sc_path + "': " + qm.status().message());
    ck.pattern_ = *pat;
    ck.prune_ = *prm;
    ck.quant_ = *qm;
    auto layers = j.find("layers");
    if (layers == j.end() || !layers->is_object())
      return format_error("'" + sc_path + "': missing object 'layers'");
    for (const LinearSpec& l : ck.linears_) {
      auto e = layers->find(l.name);
      json want = {l.N, l.K};
      if (e == layers->end() || !e->is_object() || !e->contains("shape") || (*e)["shape"] != want)
        return format_error("'" + sc_path + "': layers['" + l.name + "'] must have shape " +
                            want.dump() + " (from config.json)");
    }
  }
  return ck;
}

namespace {

// The stored value codes convert never writes: a value v (little-endian) is bad when
// (v & mask) == code. False for dtypes without such codes.
bool bad_code(DType t, uint16_t* mask, uint16_t* code, const char** what) {
  switch (t) {
    case DType::kBF16:
      *mask = *code = 0x7f80, *what = "is inf or NaN";
      return true;
    case DType::kF16:
      *mask = *code = 0x7c00, *what = "is inf or NaN";
      return true;
    case DType::kF8E4M3:
      *mask = *code = 0x7f, *what = "is the NaN code";
      return true;
    case DType::kI8:
      *mask = 0xff, *code = 0x80, *what = "is -128, outside [-127, 127]";
      return true;
    default:
      return false;
  }
}

// Returns "" or the problem of one stored value.
std::string value_problem(DType t, const uint8_t* p) {
  uint16_t mask, code;
  const char* what;
  if (!bad_code(t, &mask, &code, &what)) return "";
  uint16_t v = p[0];
  if (dtype_size(t) == 2) std::memcpy(&v, p, 2);
  return (v & mask) == code ? what : "";
}

// Index of the first stored value that value_problem rejects, or -1. Per chunk a branch-free
// count that the compiler vectorizes (~10 GB/s at -O3 on the development VM: ~0.5 s for a 7B
// model's int8 values); only a chunk with a bad value is searched element by element.
int64_t first_bad_value(DType t, const uint8_t* p, size_t nbytes) {
  uint16_t mask, code;
  const char* what;
  if (!bad_code(t, &mask, &code, &what)) return -1;
  const size_t es = dtype_size(t), n = nbytes / es;
  constexpr size_t kChunk = 4096;
  for (size_t c0 = 0; c0 < n; c0 += kChunk) {
    const size_t c1 = std::min(n, c0 + kChunk);
    unsigned bad = 0;
    if (es == 2) {
      for (size_t i = c0; i < c1; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        bad += (h & mask) == code;
      }
    } else {
      for (size_t i = c0; i < c1; ++i) bad += (p[i] & mask) == code;
    }
    if (bad)
      for (size_t i = c0; i < c1; ++i)
        if (!value_problem(t, p + i * es).empty()) return static_cast<int64_t>(i);
  }
  return -1;
}

}  // namespace

Expected<NmTensor> Checkpoint::nm_linear(const std::string& P) const {
  if (!slidesparse_)
    return invalid_argument("checkpoint '" + dir_ + "' is not a SlideSparse checkpoint (no " +
                            "slidesparse_config.json); use dense_linear_f32('" + P + "')");
  const LinearSpec* spec = nullptr;
  for (const auto& l : linears_)
    if (l.name == P) spec = &l;
  if (!spec) return not_found("checkpoint '" + dir_ + "': no linear '" + P + "'");
  const Pattern p = pattern_;
  NmTensor t;
  t.pattern = p;
  t.N = spec->N;
  t.K = spec->K;
  const int64_t blocks = p.blocks(spec->K);
  auto fail = [&](const Status& s) {
    return Status(s.code(), "checkpoint '" + dir_ + "': " + s.message());
  };

  SS_ASSIGN_OR_RETURN(TensorView vals, store_.view(P + ".nm_values"));
  DType vd = quant_ == QuantMode::kNone ? vals.dtype : quant_storage_dtype(quant_);
  if (quant_ == QuantMode::kNone && vd != DType::kBF16 && vd != DType::kF16)
    return format_error("checkpoint '" + dir_ + "': tensor '" + P + ".nm_values': expected dtype " +
                        "BF16 or F16 (quant none), got " + dtype_name(vd));
  if (Status s = check_tensor(P + ".nm_values", vals, vd, {spec->N, blocks * p.n}); !s.ok())
    return fail(s);
  t.value_dtype = vd;
  t.values.resize(vals.nbytes);
  std::memcpy(t.values.data(), vals.data, vals.nbytes);
  if (const int64_t i = first_bad_value(vd, t.values.data(), t.values.size()); i >= 0) {
    const int64_t vpr = blocks * p.n;
    return format_error("checkpoint '" + dir_ + "': tensor '" + P + ".nm_values' row " +
                        std::to_string(i / vpr) + " value " + std::to_string(i % vpr) + " " +
                        value_problem(vd, t.values.data() + i * dtype_size(vd)));
  }

  SS_ASSIGN_OR_RETURN(TensorView mask, store_.view(P + ".nm_mask"));
  const DType md = p.m <= 8 ? DType::kU8 : DType::kU16;
  if (Status s = check_tensor(P + ".nm_mask", mask, md, {spec->N, blocks}); !s.ok()) return fail(s);
  t.masks.resize(static_cast<size_t>(spec->N * blocks));
  if (md == DType::kU8) {
    const auto* m8 = static_cast<const uint8_t*>(mask.data);
    for (size_t i = 0; i < t.masks.size(); ++i) t.masks[i] = m8[i];
  } else {
    std::memcpy(t.masks.data(), mask.data, mask.nbytes);
  }
  if (quant_ != QuantMode::kNone) {
    SS_ASSIGN_OR_RETURN(TensorView sc, store_.view(P + ".weight_scale"));
    if (Status s = check_tensor(P + ".weight_scale", sc, DType::kF32, {spec->N}); !s.ok())
      return fail(s);
    t.scales.resize(static_cast<size_t>(spec->N));
    std::memcpy(t.scales.data(), sc.data, sc.nbytes);
    for (int64_t r = 0; r < spec->N; ++r)
      if (!std::isfinite(t.scales[r]) || !(t.scales[r] > 0))
        return format_error("checkpoint '" + dir_ + "': tensor '" + P + ".weight_scale' row " +
                            std::to_string(r) + " is " + std::to_string(t.scales[r]) +
                            ", expected a finite value > 0");
  } else if (store_.has(P + ".weight_scale")) {
    return format_error("checkpoint '" + dir_ + "': tensor '" + P +
                        ".weight_scale' present but quant is none");
  }
  if (Status s = nm_verify(t); !s.ok())
    return format_error("checkpoint '" + dir_ + "': tensor '" + P + ".nm_mask': " + s.message());
  return t;
}

Expected<std::vector<float>> Checkpoint::dense_linear_f32(const std::string& P) const {
  if (slidesparse_) {
    SS_ASSIGN_OR_RETURN(NmTensor t, nm_linear(P));
    return nm_to_dense_f32(t);
  }
  const LinearSpec* spec = nullptr;
  for (const auto& l : linears_)
    if (l.name == P) spec = &l;
  if (!spec) return not_found("checkpoint '" + dir_ + "': no linear '" + P + "'");
  SS_ASSIGN_OR_RETURN(TensorView v, store_.view(spec->weight_name()));
  if (Status s = check_tensor(spec->weight_name(), v, v.dtype, {spec->N, spec->K}); !s.ok())
    return Status(s.code(), "checkpoint '" + dir_ + "': " + s.message());
  return tensor_to_f32(spec->weight_name(), v);
}

Expected<std::vector<float>> Checkpoint::tensor_f32(const std::string& name) const {
  SS_ASSIGN_OR_RETURN(TensorView v, store_.view(name));
  return tensor_to_f32(name, v);
}

Expected<TensorView> Checkpoint::view(const std::string& name, const Shape& shape) const {
  SS_ASSIGN_OR_RETURN(TensorView v, store_.view(name));
  if (v.shape != shape)
    return format_error("checkpoint '" + dir_ + "': tensor '" + name + "': expected shape " +
                        shape_str(shape) + ", got " + shape_str(v.shape));
  return v;
}

Expected<std::vector<float>> Checkpoint::tensor_f32(const std::string& name,
                                                    const Shape& shape) const {
  SS_ASSIGN_OR_RETURN(TensorView v, view(name, shape));
  auto f = tensor_to_f32(name, v);
  if (!f.ok())
    return Status(f.status().code(), "checkpoint '" + dir_ + "': " + f.status().message());
  return f;
}

// ---- inspect
// --------------------------------------------------------------------------------------

namespace {

bool value_nonzero(DType t, const uint8_t* p) {
  switch (t) {
    case DType::kBF16:
    case DType::kF16: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      return (h & 0x7fff) != 0;
    }
    case DType::kF8E4M3:
      return (*p & 0x7f) != 0;
    default:
      return *p != 0;
  }
}

// InspectLinear::problem never names the checkpoint (the report is about one): the loader's
// messages start with "checkpoint '<dir>': ", which is dropped here.
std::string without_dir(const Checkpoint& ck, const std::string& msg) {
  const std::string prefix = "checkpoint '" + ck.dir() + "': ";
  return msg.compare(0, prefix.size(), prefix) == 0 ? msg.substr(prefix.size()) : msg;
}

void inspect_nm(const Checkpoint& ck, const LinearSpec& l, InspectLinear* r) {
  const Pattern p = ck.pattern();
  r->bytes = 0;
  for (const char* suf : {".nm_values", ".nm_mask", ".weight_scale"}) {
    auto v = ck.store().info(l.name + suf);
    if (v.ok()) r->bytes += v->nbytes();
  }
  auto nm = ck.nm_linear(l.name);
  for (const char* suf : {".nm_values", ".nm_mask", ".weight_scale"})
    ck.store().release(l.name + suf);
  if (!nm.ok()) {
    r->verified = false;
    r->problem = without_dir(ck, nm.status().message());
    return;
  }
  const NmTensor& t = *nm;
  r->dtype = dtype_name(t.value_dtype);
  const size_t es = dtype_size(t.value_dtype);
  const int64_t blocks = t.blocks(), vpr = t.values_per_row();
  int64_t nz = 0;
  for (int64_t row = 0; row < t.N && r->verified; ++row) {
    for (int64_t b = 0; b < blocks && r->verified; ++b) {
      const uint16_t mask = t.masks[row * blocks + b];
      int slot = 0;
      for (int i = 0; i < p.m; ++i) {
        if (!(mask >> i & 1)) continue;
        const uint8_t* v = t.values.data() + (row * vpr + b * p.n + slot++) * es;
        const int64_t k = b * p.m + i;  // values were checked by nm_linear (value_problem)
        if (value_nonzero(t.value_dtype, v)) {
          if (k >= t.K) {
            r->verified = false;
            r->problem = "tensor '" + l.name + ".nm_values' row " + std::to_string(row) +
                         ": padding position " + std::to_string(k) +
                         " >= K=" + std::to_string(t.K) + " holds a nonzero";
            break;
          }
          ++nz;
        }
      }
    }
  }
  if (r->verified) {
    // Independent re-check on the dense reconstruction: every aligned block has <= n nonzeros.
    std::vector<uint8_t> dense(static_cast<size_t>(t.N * t.K) * es);
    nm_unpack(t, dense.data());
    auto holds = pattern_holds(t.value_dtype, dense.data(), t.N, t.K, p);
    if (!holds.ok() || !*holds) {
      r->verified = false;
      r->problem = "tensor '" + l.name + "': dense reconstruction violates " + p.str();
    }
  }
  r->nonzeros = nz;
}

void inspect_dense(const Checkpoint& ck, const LinearSpec& l, InspectLinear* r,
                   std::vector<uint8_t>* holds) {
  auto v = ck.view(l.weight_name());
  if (!v.ok()) {
    r->verified = false;
    r->problem = without_dir(ck, v.status().message());
    return;
  }
  Status s = check_tensor(l.weight_name(), *v, v->dtype, {l.N, l.K});
  if (!s.ok()) {
    r->verified = false;
    r->problem = s.message();
    return;
  }
  r->dtype = dtype_name(v->dtype);
  r->bytes = v->nbytes;
  const size_t es = dtype_size(v->dtype);
  const auto* base = static_cast<const uint8_t*>(v->data);
  int64_t nz = 0;
  const int64_t n = l.N * l.K;
  for (int64_t i = 0; i < n; ++i) {
    if (v->dtype == DType::kF32) {
      uint32_t u;
      std::memcpy(&u, base + i * 4, 4);
      nz += (u & 0x7fffffffu) != 0;
    } else {
      nz += value_nonzero(v->dtype, base + i * es);
    }
  }
  r->nonzeros = nz;
  const Pattern pats[] = {{2, 4}, {4, 6}, {6, 8}, {8, 10}};
  for (int i = 0; i < 4; ++i) {
    auto h = pattern_holds(v->dtype, v->data, l.N, l.K, pats[i]);
    (*holds)[i] = h.ok() && *h;
  }
  ck.store().release(l.weight_name());
}

}  // namespace

size_t InspectReport::linear_bytes() const {
  size_t n = 0;
  for (const auto& l : linears) n += l.bytes;
  return n;
}
size_t InspectReport::linear_dense_bytes() const {
  size_t n = 0;
  for (const auto& l : linears) n += l.dense_bytes;
  return n;
}
bool InspectReport::all_verified() const {
  for (const auto& l : linears)
    if (!l.verified) return false;
  return true;
}

Expected<InspectReport> inspect_checkpoint(const std::string& dir, int threads) {
  SS_ASSIGN_OR_RETURN(Checkpoint ck, Checkpoint::open(dir));
  InspectReport rep;
  rep.dir = dir;
  rep.slidesparse = ck.is_slidesparse();
  rep.arch = model_arch_name(ck.config().arch);
  if (rep.slidesparse) {
    rep.pattern = ck.pattern().str();
    rep.prune = prune_method_name(ck.prune());
    rep.quant = quant_mode_name(ck.quant());
  }
  const auto& lins = ck.linears();
  rep.linears.resize(lins.size());
  std::vector<std::vector<uint8_t>> holds(lins.size(), std::vector<uint8_t>(4, 0));
  const DType model_dtype = ck.config().dtype == DType::kF32 ? DType::kBF16 : ck.config().dtype;
  Status s = parallel_for(
      static_cast<int64_t>(lins.size()), resolve_threads(threads), [&](int64_t i) -> Status {
        const LinearSpec& l = lins[i];
        InspectLinear& r = rep.linears[i];
        r.name = l.name;
        r.N = l.N;
        r.K = l.K;
        r.K_pad = rep.slidesparse ? ck.pattern().k_pad(l.K) : l.K;
        if (rep.slidesparse)
          inspect_nm(ck, l, &r);
        else
          inspect_dense(ck, l, &r, &holds[i]);
        // Dense of the same precision as the stored values.
        auto vd = dtype_from_name(r.dtype);
        r.dense_bytes = static_cast<size_t>(l.N * l.K) * dtype_size(vd.ok() ? *vd : model_dtype);
        r.sparsity = 1.0 - static_cast<double>(r.nonzeros) / (l.N * l.K);
        return Status::Ok();
      });
  SS_RETURN_IF_ERROR(s);
  if (!rep.slidesparse) {
    const char* names[] = {"2:4", "4:6", "6:8", "8:10"};
    for (int k = 0; k < 4; ++k) {
      bool all = !lins.empty();
      for (size_t i = 0; i < lins.size(); ++i) all = all && holds[i][k];
      if (all) rep.patterns_holding.push_back(names[k]);
    }
  }
  // Everything that is not a linear's tensor.
  std::map<std::string, bool> lin_tensor;
  for (const auto& l : lins)
    for (const char* suf : {".weight", ".nm_values", ".nm_mask", ".weight_scale"})
      lin_tensor[l.name + suf] = true;
  for (const auto& n : ck.store().names()) {
    if (lin_tensor.count(n)) continue;
    rep.other_tensors++;
    rep.other_bytes += ck.store().info(n)->nbytes();
  }
  rep.file_bytes = ck.store().total_bytes();
  return rep;
}

std::string InspectReport::to_json() const {
  json j;
  j["dir"] = dir;
  j["format"] = slidesparse ? "slidesparse" : "hf";
  j["architecture"] = arch;
  if (slidesparse) {
    j["pattern"] = pattern;
    j["prune"] = prune;
    j["quant"] = quant;
  } else {
    j["patterns_holding"] = patterns_holding;
  }
  json ls = json::array();
  for (const auto& l : linears) {
    json e = {{"name", l.name},
              {"N", l.N},
              {"K", l.K},
              {"K_pad", l.K_pad},
              {"padded", l.K_pad != l.K},
              {"dtype", l.dtype},
              {"verified", l.verified},
              {"nonzeros", l.nonzeros},
              {"sparsity", l.sparsity},
              {"bytes", l.bytes},
              {"dense_bytes", l.dense_bytes},
              {"ratio", l.dense_bytes ? static_cast<double>(l.bytes) / l.dense_bytes : 0.0}};
    if (!l.verified) e["problem"] = l.problem;
    ls.push_back(e);
  }
  j["linears"] = ls;
  const size_t lb = linear_bytes(), ld = linear_dense_bytes();
  j["totals"] = {
      {"linears", linears.size()},
      {"linear_bytes", lb},
      {"linear_dense_bytes", ld},
      {"linear_ratio", ld ? static_cast<double>(lb) / ld : 0.0},
      {"other_tensors", other_tensors},
      {"other_bytes", other_bytes},
      {"file_bytes", file_bytes},
      {"model_ratio",
       (ld + other_bytes) ? static_cast<double>(lb + other_bytes) / (ld + other_bytes) : 0.0},
      {"all_verified", all_verified()}};
  return j.dump(2) + "\n";
}

std::string InspectReport::to_text() const {
  std::string s;
  char buf[512];
  if (slidesparse)
    std::snprintf(buf, sizeof buf,
                  "%s: SlideSparse checkpoint, %s, pattern %s, prune %s, quant %s\n", dir.c_str(),
                  arch.c_str(), pattern.c_str(), prune.c_str(), quant.c_str());
  else {
    std::string ph;
    for (const auto& p : patterns_holding) ph += (ph.empty() ? "" : ", ") + p;
    std::snprintf(buf, sizeof buf, "%s: Hugging Face checkpoint, %s, patterns holding: %s\n",
                  dir.c_str(), arch.c_str(), ph.empty() ? "none" : ph.c_str());
  }
  s += buf;
  std::snprintf(buf, sizeof buf, "%-44s %7s %7s %-8s %-8s %8s %12s %6s  %s\n", "linear", "N", "K",
                "dtype", "pattern", "sparsity", "bytes", "ratio", "note");
  s += buf;
  for (const auto& l : linears) {
    std::string note;
    if (!l.verified)
      note = "FAILED: " + l.problem;
    else if (l.K_pad != l.K)
      note = "K=" + std::to_string(l.K) + " padded to " + std::to_string(l.K_pad);
    std::snprintf(buf, sizeof buf, "%-44s %7lld %7lld %-8s %-8s %8.4f %12zu %6.3f  %s\n",
                  l.name.c_str(), static_cast<long long>(l.N), static_cast<long long>(l.K),
                  l.dtype.c_str(),
                  !l.verified   ? "FAIL"
                  : slidesparse ? "ok"
                                : "dense",
                  l.sparsity, l.bytes,
                  l.dense_bytes ? static_cast<double>(l.bytes) / l.dense_bytes : 0.0, note.c_str());
    s += buf;
  }
  const size_t lb = linear_bytes(), ld = linear_dense_bytes();
  int64_t nz = 0, el = 0;
  for (const auto& l : linears) {
    nz += l.nonzeros;
    el += l.N * l.K;
  }
  std::snprintf(
      buf, sizeof buf,
      "total: %zu linears, sparsity %.4f, %zu bytes vs %zu dense (%.3f); other tensors: "
      "%lld (%zu bytes); files %zu bytes (%.3f of the model with dense linears); %s\n",
      linears.size(), el ? 1.0 - static_cast<double>(nz) / el : 0.0, lb, ld,
      ld ? static_cast<double>(lb) / ld : 0.0, static_cast<long long>(other_tensors), other_bytes,
      file_bytes,
      (ld + other_bytes) ? static_cast<double>(lb + other_bytes) / (ld + other_bytes) : 0.0,
      all_verified() ? "all verified" : "VERIFICATION FAILED");
  s += buf;
  return s;
}

}  // namespace slidesparse
