// Llama / Qwen2 forward pass over a Backend, with a KV cache.
#include "slidesparse/model.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>

#include "slidesparse/checkpoint.h"
#include "slidesparse/gguf.h"
#include "slidesparse/nm_tensor.h"

namespace slidesparse {

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int64_t half = c.head_dim / 2;
  std::vector<float> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(c.head_dim);
    f[static_cast<size_t>(i)] = 1.0f / std::pow(static_cast<float>(c.rope_theta), e);
  }
  if (c.rope_scaling.kind == "llama3") {
    const RopeScaling& r = c.rope_scaling;
    const double old_len = static_cast<double>(r.original_max_position_embeddings);
    const double low_wl = old_len / r.low_freq_factor, high_wl = old_len / r.high_freq_factor;
    for (float& x : f) {
      const double wl = 2.0 * M_PI / x;
      if (wl > low_wl) {
        x = static_cast<float>(x / r.factor);
      } else if (wl >= high_wl) {
        const double s =
            (old_len / wl - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        x = static_cast<float>((1 - s) * x / r.factor + s * x);
      }
    }
  }
  return f;
}

namespace {

// Where the weights come from: GGUF or a checkpoint directory, HF tensor names in both.
struct Source {
  std::unique_ptr<GgufFile> gguf;
  std::unique_ptr<Checkpoint> ckpt;
  ModelConfig cfg;
  Expected<std::vector<float>> f32(const std::string& name) const {
    if (gguf) return gguf_read_hf_tensor(*gguf, cfg, name);
    return ckpt->tensor_f32(name);
  }
  // A checkpoint's tensor must have `shape` exactly; GGUF tensors (stored in llama.cpp's layout,
  // mapped to HF's by gguf_read_hf_tensor) must have its element count.
  Expected<std::vector<float>> f32_shaped(const std::string& name, const Shape& shape) const {
    if (ckpt) return ckpt->tensor_f32(name, shape);
    SS_ASSIGN_OR_RETURN(std::vector<float> v, f32(name));
    if (static_cast<int64_t>(v.size()) != shape_numel(shape)) {
      return format_error("tensor '" + name + "': " + std::to_string(v.size()) +
                          " elements, expected shape " + shape_str(shape));
    }
    return v;
  }
};

}  // namespace

Expected<std::unique_ptr<Model>> Model::load(const std::string& path, Backend* be,
                                             const SparsifyOptions& sp) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    return not_found("model '" + path + "': no such file or directory");
  Source src;
  auto m = std::make_unique<Model>();
  std::string origin;
  if (S_ISDIR(st.st_mode)) {
    SS_ASSIGN_OR_RETURN(Checkpoint ck, Checkpoint::open(path));
    src.ckpt = std::make_unique<Checkpoint>(std::move(ck));
    src.cfg = src.ckpt->config();
    if (src.ckpt->is_slidesparse()) {
      if (sp.enabled) {
        return invalid_argument("model '" + path +
                                "' is already a SlideSparse checkpoint: it cannot be pruned again");
      }
      origin = std::string("SlideSparse ") + src.ckpt->pattern().str() + " " +
               prune_method_name(src.ckpt->prune()) + " " + quant_mode_name(src.ckpt->quant());
    } else {
      origin = "HF dense";
    }
  } else {
    SS_ASSIGN_OR_RETURN(GgufFile g, GgufFile::open(path));
    src.gguf = std::make_unique<GgufFile>(std::move(g));
    SS_ASSIGN_OR_RETURN(src.cfg, gguf_model_config(*src.gguf));
    origin = "GGUF dense (dequantized to f32)";
  }
  const ModelConfig& c = src.cfg;
  m->cfg_ = c;
  m->be_ = be;
  m->inv_freq_ = rope_inv_freq(c);
  const int64_t C = c.hidden_size;
  SS_ASSIGN_OR_RETURN(m->embed_, src.f32_shaped("model.embed_tokens.weight", {c.vocab_size, C}));
  SS_ASSIGN_OR_RETURN(m->final_norm_, src.f32_shaped("model.norm.weight", {C}));
  if (c.tie_word_embeddings) {
    m->lm_head_ = be->make_dense_linear(m->embed_, c.vocab_size, C, {});
  } else {
    SS_ASSIGN_OR_RETURN(std::vector<float> w, src.f32_shaped("lm_head.weight", {c.vocab_size, C}));
    m->lm_head_ = be->make_dense_linear(std::move(w), c.vocab_size, C, {});
  }
  m->layers_.resize(static_cast<size_t>(c.num_layers));
  const std::vector<LinearSpec> specs = model_linears(c);
  for (const LinearSpec& ls : specs) {
    std::vector<float> bias;
    if (ls.has_bias) {
      SS_ASSIGN_OR_RETURN(bias, src.f32_shaped(ls.bias_name(), {ls.N}));
    }
    std::unique_ptr<Linear> lin;
    if (src.ckpt && src.ckpt->is_slidesparse()) {
      SS_ASSIGN_OR_RETURN(NmTensor t, src.ckpt->nm_linear(ls.name));
      SS_ASSIGN_OR_RETURN(lin, be->make_nm_linear(t, std::move(bias)));
    } else {
      SS_ASSIGN_OR_RETURN(std::vector<float> w, src.f32_shaped(ls.weight_name(), {ls.N, ls.K}));
      if (sp.enabled) {
        const float* norms = nullptr;
        if (sp.prune == PruneMethod::kWanda) {
          auto it = sp.act_norms.find(ls.name);
          if (it == sp.act_norms.end() || static_cast<int64_t>(it->second.size()) != ls.K) {
            return invalid_argument("wanda: no activation norms of length " + std::to_string(ls.K) +
                                    " for '" + ls.name + "'");
          }
          norms = it->second.data();
        }
        SS_ASSIGN_OR_RETURN(NmTensor t, nm_compress(w.data(), ls.N, ls.K, sp.pattern, sp.prune,
                                                    norms, sp.quant, DType::kBF16));
        SS_ASSIGN_OR_RETURN(lin, be->make_nm_linear(t, std::move(bias)));
      } else {
        lin = be->make_dense_linear(std::move(w), ls.N, ls.K, std::move(bias));
      }
    }
    Layer& L = m->layers_[static_cast<size_t>(ls.layer)];
    std::unique_ptr<Linear>* slot[] = {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down};
    *slot[static_cast<int>(ls.kind)] = std::move(lin);
    m->linear_names_.push_back(ls.name);
  }
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Layer& L = m->layers_[static_cast<size_t>(l)];
    SS_ASSIGN_OR_RETURN(L.attn_norm, src.f32_shaped(p + "input_layernorm.weight", {C}));
    SS_ASSIGN_OR_RETURN(L.mlp_norm, src.f32_shaped(p + "post_attention_layernorm.weight", {C}));
  }
  if (sp.enabled) {
    origin += std::string(", pruned at load to ") + sp.pattern.str() + " " +
              prune_method_name(sp.prune) + " " + quant_mode_name(sp.quant);
  }
  m->desc_ = origin;
  return m;
}

void Model::collect(const std::string& name, const float* x, int64_t M, int64_t K) {
  if (!collect_) return;
  std::vector<double>& s = sumsq_[name];
  s.resize(static_cast<size_t>(K), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k)
      s[static_cast<size_t>(k)] += static_cast<double>(x[i * K + k]) * x[i * K + k];
}

std::map<std::string, std::vector<float>> Model::act_norms() const {
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, s] : sumsq_) {
    std::vector<float>& v = out[name];
    for (double d : s) v.push_back(static_cast<float>(std::sqrt(d)));
  }
  return out;
}

Status Model::forward(const int32_t* tokens, int64_t n, float* logits) {
  const ModelConfig& c = cfg_;
  if (n <= 0) return invalid_argument("forward: no tokens");
  if (cache_len_ + n > c.max_position_embeddings) {
    return invalid_argument("context of " + std::to_string(cache_len_ + n) +
                            " tokens exceeds the model's maximum of " +
                            std::to_string(c.max_position_embeddings));
  }
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size) {
      return invalid_argument("token id " + std::to_string(tokens[i]) +
                              " outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
    }
  }
  const int64_t C = c.hidden_size, H = c.num_heads, KV = c.num_kv_heads, hd = c.head_dim;
  const int64_t F = c.intermediate_size, kvw = KV * hd, pos0 = cache_len_;
  if (pos0 + n > cache_cap_) {  // grow every layer's cache (keeps the cached rows)
    int64_t cap = std::max<int64_t>(cache_cap_ * 2, 256);
    while (cap < pos0 + n) cap *= 2;
    cap = std::min(cap, c.max_position_embeddings);
    for (Layer& L : layers_) {
      L.kc.resize(static_cast<size_t>(cap * kvw));
      L.vc.resize(static_cast<size_t>(cap * kvw));
    }
    cache_cap_ = cap;
  }
  std::vector<float> x(static_cast<size_t>(n * C)), h(x.size()), q(static_cast<size_t>(n * H * hd)),
      att(q.size()), o(x.size()), g(static_cast<size_t>(n * F)), u(g.size());
  std::vector<int64_t> pos(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    pos[static_cast<size_t>(i)] = pos0 + i;
    std::memcpy(&x[static_cast<size_t>(i * C)], &embed_[static_cast<size_t>(tokens[i] * C)],
                static_cast<size_t>(C) * sizeof(float));
  }
  const float eps = static_cast<float>(c.rms_norm_eps);
  size_t li = 0;  // index into linear_names_
  for (Layer& L : layers_) {
    be_->rmsnorm(x.data(), L.attn_norm.data(), h.data(), n, C, eps);
    collect(linear_names_[li], h.data(), n, C);
    collect(linear_names_[li + 1], h.data(), n, C);
    collect(linear_names_[li + 2], h.data(), n, C);
    float* kdst = L.kc.data() + pos0 * kvw;
    float* vdst = L.vc.data() + pos0 * kvw;
    L.q->forward(h.data(), n, q.data());
    L.k->forward(h.data(), n, kdst);
    L.v->forward(h.data(), n, vdst);
    be_->rope(q.data(), n, H, hd, pos.data(), inv_freq_.data());
    be_->rope(kdst, n, KV, hd, pos.data(), inv_freq_.data());
    be_->attention(q.data(), L.kc.data(), L.vc.data(), att.data(), n, pos0, H, KV, hd);
    collect(linear_names_[li + 3], att.data(), n, H * hd);
    L.o->forward(att.data(), n, o.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    be_->rmsnorm(x.data(), L.mlp_norm.data(), h.data(), n, C, eps);
    collect(linear_names_[li + 4], h.data(), n, C);
    collect(linear_names_[li + 5], h.data(), n, C);
    L.gate->forward(h.data(), n, g.data());
    L.up->forward(h.data(), n, u.data());
    be_->silu_mul(g.data(), u.data(), g.data(), n * F);
    collect(linear_names_[li + 6], g.data(), n, F);
    L.down->forward(g.data(), n, o.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    li += 7;
  }
  cache_len_ += n;
  if (logits) {
    be_->rmsnorm(x.data(), final_norm_.data(), h.data(), n, C, eps);
    lm_head_->forward(h.data(), n, logits);
  }
  return Status::Ok();
}

}  // namespace slidesparse
