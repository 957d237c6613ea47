// GGUF reader: every length and offset is checked against the file size before it is used.
#include "slidesparse/gguf.h"

#include <cstdio>
#include <cstring>
#include <fstream>

#include "slidesparse/dtype.h"

namespace slidesparse {
namespace {

constexpr uint32_t kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 8, kBF16 = 30;

struct TypeTraits {
  int64_t block;  // elements per block
  size_t bytes;   // bytes per block
};

bool type_traits(uint32_t t, TypeTraits* tt) {
  switch (t) {
    case kF32:
      *tt = {1, 4};
      return true;
    case kF16:
      *tt = {1, 2};
      return true;
    case kBF16:
      *tt = {1, 2};
      return true;
    case kQ4_0:
      *tt = {32, 18};
      return true;
    case kQ4_1:
      *tt = {32, 20};
      return true;
    case kQ8_0:
      *tt = {32, 34};
      return true;
    default:
      return false;
  }
}

// Sequential, bounds-checked reads from an ifstream of known size.
class Reader {
 public:
  Reader(std::ifstream& in, size_t size, const std::string& path)
      : in_(in), size_(size), path_(path) {}
  size_t pos() const { return pos_; }
  Status bytes(void* dst, size_t n, const char* what) {
    if (n > size_ - pos_) {
      return format_error("GGUF '" + path_ + "': " + what + " at offset " + std::to_string(pos_) +
                          " runs past the end of the file (" + std::to_string(size_) + " bytes)");
    }
    in_.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (!in_)
      return io_error("GGUF '" + path_ + "': read failed at offset " + std::to_string(pos_));
    pos_ += n;
    return Status::Ok();
  }
  template <class T>
  Status pod(T* v, const char* what) {
    return bytes(v, sizeof(T), what);
  }
  Status str(std::string* s, const char* what) {
    uint64_t n = 0;
    SS_RETURN_IF_ERROR(pod(&n, what));
    if (n > size_ - pos_) {
      return format_error("GGUF '" + path_ + "': " + what + " of length " + std::to_string(n) +
                          " at offset " + std::to_string(pos_) + " runs past the end of the file");
    }
    s->resize(n);
    return bytes(s->data(), n, what);
  }
  const std::string& path() const { return path_; }
  size_t remaining() const { return size_ - pos_; }

 private:
  std::ifstream& in_;
  size_t size_, pos_ = 0;
  std::string path_;
};

// GGUF metadata value types.
enum : uint32_t {
  kU8 = 0,
  kI8,
  kU16,
  kI16,
  kU32,
  kI32,
  kF32v,
  kBool,
  kString,
  kArray,
  kU64,
  kI64,
  kF64
};

Status read_scalar(Reader& r, uint32_t type, double* out, const std::string& key) {
  switch (type) {
    case kU8: {
      uint8_t v;
      SS_RETURN_IF_ERROR(r.pod(&v, "metadata value"));
      *out = v;
      break;
    }
    case kI8: {
      int8_t v;
      SS_RETURN_IF_ERROR(r.pod(&v, "metadata value"));
      *out = v;
      break;
    }
    case kU16: {
      uint16_t v;
      SS_RETURN_IF_ERROR(r.pod(&v, "metadata value"));
      *out = v;
      break;
    }
    case kI16: {
      int16_t v;
      SS_RETURN_IF_ERROR(r.pod(&v, "metadata value"));
      *out = v;
      break;
    }
    case kU32: {
      uint32_t v;
      SS_RETURN_IF_ERROR(r.pod(&v, "metadata value"));
      *out = v;
      break;
    }
    case kI32: {
      int32_t v;
      SS_RETURN_IF_ERROR(r.pod(&v, "metadata value"));
      *out = v;
      break;
    }
    case kF32v: {
      float v;
      SS_RETURN_IF_ERROR(r.pod(&v, "metadata value"));
      *out = v;
      break;
    }
    case kBool: {
      uint8_t v;
      SS_RETURN_IF_ERROR(r.pod(&v, "metadata value"));
      if (v > 1)
        return format_error("GGUF '" + r.path() + "': key '" + key + "': bool byte " +
                            std::to_string(v));
      *out = v;
      break;
    }
    case kU64: {
      uint64_t v;
      SS_RETURN_IF_ERROR(r.pod(&v, "metadata value"));
      *out = static_cast<double>(v);
      break;
    }
    case kI64: {
      int64_t v;
      SS_RETURN_IF_ERROR(r.pod(&v, "metadata value"));
      *out = static_cast<double>(v);
      break;
    }
    case kF64: {
      double v;
      SS_RETURN_IF_ERROR(r.pod(&v, "metadata value"));
      *out = v;
      break;
    }
    default:
      return format_error("GGUF '" + r.path() + "': key '" + key + "': unknown value type " +
                          std::to_string(type));
  }
  return Status::Ok();
}

Status read_value(Reader& r, uint32_t type, GgufValue* v, const std::string& key) {
  if (type == kString) {
    v->kind = GgufValue::Kind::kString;
    return r.str(&v->str, "metadata string");
  }
  if (type == kArray) {
    v->kind = GgufValue::Kind::kArray;
    uint32_t et = 0;
    uint64_t n = 0;
    SS_RETURN_IF_ERROR(r.pod(&et, "array element type"));
    SS_RETURN_IF_ERROR(r.pod(&n, "array length"));
    if (et == kArray)
      return unsupported("GGUF '" + r.path() + "': key '" + key + "': nested arrays");
    if (n > (1u << 26) || n > r.remaining()) {  // every element takes at least one byte
      return format_error("GGUF '" + r.path() + "': key '" + key + "': array length " +
                          std::to_string(n) + " exceeds the rest of the file (or 2^26)");
    }
    if (et == kString) {
      v->strs.resize(n);
      for (uint64_t i = 0; i < n; ++i) SS_RETURN_IF_ERROR(r.str(&v->strs[i], "metadata string"));
    } else {
      v->nums.resize(n);
      for (uint64_t i = 0; i < n; ++i) SS_RETURN_IF_ERROR(read_scalar(r, et, &v->nums[i], key));
    }
    return Status::Ok();
  }
  v->kind = type == kBool ? GgufValue::Kind::kBool : GgufValue::Kind::kNumber;
  return read_scalar(r, type, &v->num, key);
}

}  // namespace

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

const char* gguf_type_name(uint32_t type) {
  switch (type) {
    case kF32:
      return "F32";
    case kF16:
      return "F16";
    case kBF16:
      return "BF16";
    case kQ4_0:
      return "Q4_0";
    case kQ4_1:
      return "Q4_1";
    case kQ8_0:
      return "Q8_0";
    default:
      return "unsupported";
  }
}

Expected<GgufFile> GgufFile::open(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return not_found("GGUF '" + path + "': cannot open file");
  const auto end = in.tellg();
  if (end < 0) return io_error("GGUF '" + path + "': cannot determine the file size");
  in.seekg(0);
  GgufFile f;
  f.path_ = path;
  f.file_size_ = static_cast<size_t>(end);
  Reader r(in, f.file_size_, path);
  char magic[4];
  SS_RETURN_IF_ERROR(r.bytes(magic, 4, "magic"));
  if (std::memcmp(magic, "GGUF", 4) != 0) {
    return format_error("GGUF '" + path + "': bad magic (expected 'GGUF')");
  }
  uint32_t version = 0;
  uint64_t n_tensors = 0, n_kv = 0;
  SS_RETURN_IF_ERROR(r.pod(&version, "version"));
  if (version != 2 && version != 3) {
    return unsupported("GGUF '" + path + "': version " + std::to_string(version) +
                       " (expected 2 or 3)");
  }
  SS_RETURN_IF_ERROR(r.pod(&n_tensors, "tensor count"));
  SS_RETURN_IF_ERROR(r.pod(&n_kv, "metadata count"));
  if (n_tensors > (1u << 20) || n_kv > (1u << 20)) {
    return format_error("GGUF '" + path + "': implausible counts (" + std::to_string(n_tensors) +
                        " tensors, " + std::to_string(n_kv) + " metadata keys)");
  }
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    uint32_t type = 0;
    SS_RETURN_IF_ERROR(r.str(&key, "metadata key"));
    SS_RETURN_IF_ERROR(r.pod(&type, "metadata type"));
    GgufValue v;
    SS_RETURN_IF_ERROR(read_value(r, type, &v, key));
    if (!f.meta_.emplace(key, std::move(v)).second) {
      return format_error("GGUF '" + path + "': duplicate metadata key '" + key + "'");
    }
  }
  size_t alignment = 32;
  if (const GgufValue* a = f.find("general.alignment")) {
    if (a->kind != GgufValue::Kind::kNumber || a->num < 1 || a->num > 65536) {
      return format_error("GGUF '" + path + "': general.alignment must be in 1..65536");
    }
    alignment = static_cast<size_t>(a->num);
  }
  std::vector<uint64_t> rel_offsets;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    uint32_t nd = 0;
    SS_RETURN_IF_ERROR(r.str(&t.name, "tensor name"));
    SS_RETURN_IF_ERROR(r.pod(&nd, "tensor dims"));
    if (nd < 1 || nd > 4) {
      return format_error("GGUF '" + path + "': tensor '" + t.name + "' has " + std::to_string(nd) +
                          " dims (expected 1..4)");
    }
    int64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      uint64_t ne = 0;
      SS_RETURN_IF_ERROR(r.pod(&ne, "tensor dim"));
      if (ne < 1 || ne > (uint64_t{1} << 40) ||
          numel > (int64_t{1} << 40) / static_cast<int64_t>(ne)) {
        return format_error("GGUF '" + path + "': tensor '" + t.name + "' has a bad dim " +
                            std::to_string(ne));
      }
      numel *= static_cast<int64_t>(ne);
      t.ne.push_back(static_cast<int64_t>(ne));
    }
    uint64_t off = 0;
    SS_RETURN_IF_ERROR(r.pod(&t.type, "tensor type"));
    SS_RETURN_IF_ERROR(r.pod(&off, "tensor offset"));
    TypeTraits tt{};
    if (!type_traits(t.type, &tt)) {
      return unsupported("GGUF '" + path + "': tensor '" + t.name + "' has ggml type " +
                         std::to_string(t.type) + " (supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0)");
    }
    if (t.ne[0] % tt.block != 0) {
      return format_error("GGUF '" + path + "': tensor '" + t.name + "' row length " +
                          std::to_string(t.ne[0]) + " is not a multiple of the block size " +
                          std::to_string(tt.block));
    }
    t.nbytes = static_cast<size_t>(numel / tt.block) * tt.bytes;
    rel_offsets.push_back(off);
    if (f.index_.count(t.name)) {
      return format_error("GGUF '" + path + "': duplicate tensor '" + t.name + "'");
    }
    f.index_[t.name] = f.tensors_.size();
    f.tensors_.push_back(std::move(t));
  }
  const size_t data_start = (r.pos() + alignment - 1) / alignment * alignment;
  for (size_t i = 0; i < f.tensors_.size(); ++i) {
    GgufTensorInfo& t = f.tensors_[i];
    if (rel_offsets[i] % alignment != 0 || rel_offsets[i] > f.file_size_ ||
        data_start + rel_offsets[i] > f.file_size_ ||
        t.nbytes > f.file_size_ - data_start - rel_offsets[i]) {
      return format_error("GGUF '" + path + "': tensor '" + t.name + "' data (offset " +
                          std::to_string(rel_offsets[i]) + ", " + std::to_string(t.nbytes) +
                          " bytes) is misaligned or lies outside the file");
    }
    t.offset = data_start + rel_offsets[i];
  }
  return f;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = meta_.find(key);
  return it == meta_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::tensor(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Status gguf_dequantize(uint32_t type, const uint8_t* src, int64_t count, float* dst) {
  auto h = [](const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return fp16_to_float(v);
  };
  switch (type) {
    case kF32:
      std::memcpy(dst, src, static_cast<size_t>(count) * 4);
      return Status::Ok();
    case kF16:
      return convert_to_f32(DType::kF16, src, dst, count);
    case kBF16:
      return convert_to_f32(DType::kBF16, src, dst, count);
    case kQ4_0:  // {f16 d; u8 qs[16]}: x = (q - 8) * d; low nibbles are 0..15, high 16..31
      for (int64_t b = 0; b < count / 32; ++b, src += 18, dst += 32) {
        const float d = h(src);
        for (int j = 0; j < 16; ++j) {
          dst[j] = static_cast<float>((src[2 + j] & 0xF) - 8) * d;
          dst[j + 16] = static_cast<float>((src[2 + j] >> 4) - 8) * d;
        }
      }
      return Status::Ok();
    case kQ4_1:  // {f16 d; f16 m; u8 qs[16]}: x = q * d + m
      for (int64_t b = 0; b < count / 32; ++b, src += 20, dst += 32) {
        const float d = h(src), m = h(src + 2);
        for (int j = 0; j < 16; ++j) {
          dst[j] = static_cast<float>(src[4 + j] & 0xF) * d + m;
          dst[j + 16] = static_cast<float>(src[4 + j] >> 4) * d + m;
        }
      }
      return Status::Ok();
    case kQ8_0:  // {f16 d; i8 qs[32]}: x = q * d
      for (int64_t b = 0; b < count / 32; ++b, src += 34, dst += 32) {
        const float d = h(src);
        for (int j = 0; j < 32; ++j)
          dst[j] = static_cast<float>(static_cast<int8_t>(src[2 + j])) * d;
      }
      return Status::Ok();
    default:
      return unsupported(std::string("GGUF: cannot dequantize ggml type ") + std::to_string(type));
  }
}

Expected<std::vector<float>> GgufFile::read_f32(const std::string& name) const {
  const GgufTensorInfo* t = tensor(name);
  if (!t) return not_found("GGUF '" + path_ + "': no tensor '" + name + "'");
  std::ifstream in(path_, std::ios::binary);
  if (!in) return io_error("GGUF '" + path_ + "': cannot reopen file");
  std::vector<uint8_t> raw(t->nbytes);
  in.seekg(static_cast<std::streamoff>(t->offset));
  in.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(raw.size()));
  if (!in) return io_error("GGUF '" + path_ + "': read of tensor '" + name + "' failed");
  std::vector<float> out(static_cast<size_t>(t->numel()));
  SS_RETURN_IF_ERROR(gguf_dequantize(t->type, raw.data(), t->numel(), out.data()));
  return out;
}

// ---- Llama in Hugging Face form ---------------------------------------------------------------

namespace {

Expected<int64_t> meta_int(const GgufFile& f, const std::string& key, int64_t dflt = -1) {
  const GgufValue* v = f.find(key);
  if (!v) {
    if (dflt >= 0) return dflt;
    return format_error("GGUF '" + f.path() + "': missing metadata '" + key + "'");
  }
  if (v->kind != GgufValue::Kind::kNumber || !(v->num >= 1 && v->num < 0x1p62) ||
      v->num != static_cast<double>(static_cast<int64_t>(v->num))) {
    return format_error("GGUF '" + f.path() + "': metadata '" + key +
                        "' must be a positive integer");
  }
  return static_cast<int64_t>(v->num);
}

}  // namespace

Expected<ModelConfig> gguf_model_config(const GgufFile& f) {
  const GgufValue* arch = f.find("general.architecture");
  if (!arch || arch->kind != GgufValue::Kind::kString) {
    return format_error("GGUF '" + f.path() + "': missing general.architecture");
  }
  if (arch->str != "llama") {
    return unsupported("GGUF '" + f.path() + "': architecture '" + arch->str +
                       "' (supported: llama)");
  }
  ModelConfig c;
  c.arch = ModelArch::kLlama;
  SS_ASSIGN_OR_RETURN(c.hidden_size, meta_int(f, "llama.embedding_length"));
  SS_ASSIGN_OR_RETURN(c.intermediate_size, meta_int(f, "llama.feed_forward_length"));
  SS_ASSIGN_OR_RETURN(c.num_layers, meta_int(f, "llama.block_count"));
  SS_ASSIGN_OR_RETURN(c.num_heads, meta_int(f, "llama.attention.head_count"));
  SS_ASSIGN_OR_RETURN(c.num_kv_heads, meta_int(f, "llama.attention.head_count_kv", c.num_heads));
  SS_ASSIGN_OR_RETURN(c.max_position_embeddings, meta_int(f, "llama.context_length"));
  if (c.hidden_size % c.num_heads != 0 || c.num_heads % c.num_kv_heads != 0) {
    return format_error("GGUF '" + f.path() + "': inconsistent head counts");
  }
  c.head_dim = c.hidden_size / c.num_heads;
  SS_ASSIGN_OR_RETURN(int64_t rope_dim, meta_int(f, "llama.rope.dimension_count", c.head_dim));
  if (rope_dim != c.head_dim) {
    return unsupported("GGUF '" + f.path() +
                       "': partial rotary (rope.dimension_count != head dim)");
  }
  if (const GgufValue* v = f.find("llama.rope.freq_base")) c.rope_theta = v->num;
  if (const GgufValue* v = f.find("llama.attention.layer_norm_rms_epsilon"))
    c.rms_norm_eps = v->num;
  const GgufTensorInfo* emb = f.tensor("token_embd.weight");
  if (!emb || emb->ne.size() != 2 || emb->ne[0] != c.hidden_size) {
    return format_error("GGUF '" + f.path() + "': missing or misshaped token_embd.weight");
  }
  c.vocab_size = emb->ne[1];
  for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"}) {
    const GgufValue* v = f.find(key);
    if (!v) continue;
    if (v->kind != GgufValue::Kind::kNumber || !(v->num >= 0 && v->num < 0x1p31) ||
        v->num != static_cast<double>(static_cast<int64_t>(v->num)))
      return format_error("GGUF '" + f.path() + "': metadata '" + key +
                          "' must be an integer >= 0");
    if (std::strcmp(key, "tokenizer.ggml.bos_token_id") == 0)
      c.bos_token_id = static_cast<int64_t>(v->num);
    else
      c.eos_token_ids.push_back(static_cast<int64_t>(v->num));
  }
  SS_RETURN_IF_ERROR(model_config_check_sizes(c, f.path()));
  if (const GgufValue* v = f.find("llama.vocab_size");
      v && v->kind == GgufValue::Kind::kNumber && v->num != static_cast<double>(c.vocab_size))
    return format_error("GGUF '" + f.path() +
                        "': llama.vocab_size = " + std::to_string(static_cast<int64_t>(v->num)) +
                        " but token_embd.weight has " + std::to_string(c.vocab_size) + " rows");
  if (const GgufValue* v = f.find("tokenizer.ggml.tokens");
      v && static_cast<int64_t>(v->strs.size()) > c.vocab_size)
    return format_error("GGUF '" + f.path() + "': " + std::to_string(v->strs.size()) +
                        " tokenizer tokens but token_embd.weight has " +
                        std::to_string(c.vocab_size) + " rows");
  {
    std::vector<std::string> names;
    for (const GgufTensorInfo& t : f.tensors()) names.push_back(t.name);
    if (int64_t i = first_extra_layer_name(names, c, "blk."); i >= 0)
      return format_error(
          "GGUF '" + f.path() + "': tensor '" + names[i] +
          "' is past the last block (llama.block_count = " + std::to_string(c.num_layers) + ")");
  }
  c.tie_word_embeddings = f.tensor("output.weight") == nullptr;
  c.dtype = DType::kF32;
  return c;
}

Expected<std::vector<float>> gguf_read_hf_tensor(const GgufFile& f, const ModelConfig& c,
                                                 const std::string& hf) {
  std::string g;
  bool permute_q = false, permute_k = false;
  if (hf == "model.embed_tokens.weight") {
    g = "token_embd.weight";
  } else if (hf == "model.norm.weight") {
    g = "output_norm.weight";
  } else if (hf == "lm_head.weight") {
    g = c.tie_word_embeddings ? "token_embd.weight" : "output.weight";
  } else if (hf.rfind("model.layers.", 0) == 0) {
    const size_t dot = hf.find('.', 13);
    if (dot == std::string::npos) return not_found("GGUF: no tensor for '" + hf + "'");
    const std::string layer = hf.substr(13, dot - 13), rest = hf.substr(dot + 1);
    static const std::map<std::string, std::string> kMap = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"}};
    auto it = kMap.find(rest);
    if (it == kMap.end()) return not_found("GGUF: no tensor for '" + hf + "'");
    g = "blk." + layer + "." + it->second;
    permute_q = rest == "self_attn.q_proj.weight";
    permute_k = rest == "self_attn.k_proj.weight";
  } else {
    return not_found("GGUF: no tensor for '" + hf + "'");
  }
  SS_ASSIGN_OR_RETURN(std::vector<float> w, f.read_f32(g));
  if (permute_q || permute_k) {
    // llama.cpp stores row h*hd + 2i + j for HF row h*hd + j*hd/2 + i (rotary pairs interleaved).
    const int64_t heads = permute_q ? c.num_heads : c.num_kv_heads, hd = c.head_dim;
    const int64_t K = c.hidden_size;
    if (static_cast<int64_t>(w.size()) != heads * hd * K) {
      return format_error("GGUF '" + f.path() + "': tensor '" + g + "' has " +
                          std::to_string(w.size()) + " elements, expected " +
                          std::to_string(heads * hd * K));
    }
    std::vector<float> out(w.size());
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < hd / 2; ++i)
        for (int64_t j = 0; j < 2; ++j)
          std::memcpy(&out[static_cast<size_t>((h * hd + j * hd / 2 + i) * K)],
                      &w[static_cast<size_t>((h * hd + 2 * i + j) * K)],
                      static_cast<size_t>(K) * sizeof(float));
    return out;
  }
  return w;
}

}  // namespace slidesparse
