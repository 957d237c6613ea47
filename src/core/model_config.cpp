// config.json of the Llama and Qwen2 families, and the tensor names of their checkpoints.
#include "slidesparse/model_config.h"

#include <nlohmann/json.hpp>

#include "core/fs_util.h"

namespace slidesparse {
namespace {
using json = nlohmann::json;
}

const char* model_arch_name(ModelArch a) {
  return a == ModelArch::kQwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
}

const char* linear_kind_name(LinearKind k) {
  switch (k) {
    case LinearKind::kQ:
      return "q_proj";
    case LinearKind::kK:
      return "k_proj";
    case LinearKind::kV:
      return "v_proj";
    case LinearKind::kO:
      return "o_proj";
    case LinearKind::kGate:
      return "gate_proj";
    case LinearKind::kUp:
      return "up_proj";
    case LinearKind::kDown:
      return "down_proj";
  }
  return "?";
}

Expected<ModelConfig> model_config_parse(const std::string& text, const std::string& origin) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return format_error("'" + origin + "': not valid JSON");
  if (!j.is_object()) return format_error("'" + origin + "': not a JSON object");
  auto field_err = [&](const std::string& f, const std::string& want) {
    return format_error("'" + origin + "': field '" + f + "' " + want);
  };
  ModelConfig c;
  std::string arch;
  if (auto a = j.find("architectures");
      a != j.end() && a->is_array() && !a->empty() && (*a)[0].is_string())
    arch = (*a)[0].get<std::string>();
  std::string mt = j.value("model_type", std::string());
  if (arch == "LlamaForCausalLM" || (arch.empty() && mt == "llama")) {
    c.arch = ModelArch::kLlama;
  } else if (arch == "Qwen2ForCausalLM" || (arch.empty() && mt == "qwen2")) {
    c.arch = ModelArch::kQwen2;
  } else {
    return unsupported("'" + origin + "': unknown architecture '" +
                       (arch.empty() ? "model_type=" + mt : arch) +
                       "', expected LlamaForCausalLM or Qwen2ForCausalLM");
  }

  auto get_int = [&](const char* f, int64_t* out, bool required, int64_t def) -> Status {
    auto it = j.find(f);
    if (it == j.end() || it->is_null()) {
      if (required) return field_err(f, "is missing");
      *out = def;
      return Status::Ok();
    }
    if (!it->is_number_integer() || it->get<int64_t>() <= 0)
      return field_err(f, "must be a positive integer, got " + it->dump());
    *out = it->get<int64_t>();
    return Status::Ok();
  };
  auto get_num = [&](const char* f, double* out, double def) -> Status {
    auto it = j.find(f);
    if (it == j.end() || it->is_null()) {
      *out = def;
      return Status::Ok();
    }
    if (!it->is_number() || !(it->get<double>() > 0))
      return field_err(f, "must be a positive number, got " + it->dump());
    *out = it->get<double>();
    return Status::Ok();
  };
  auto get_bool = [&](const char* f, bool def) -> Expected<bool> {
    auto it = j.find(f);
    if (it == j.end() || it->is_null()) return def;
    if (!it->is_boolean()) return field_err(f, "must be true or false, got " + it->dump());
    return it->get<bool>();
  };
  SS_RETURN_IF_ERROR(get_int("hidden_size", &c.hidden_size, true, 0));
  SS_RETURN_IF_ERROR(get_int("intermediate_size", &c.intermediate_size, true, 0));
  SS_RETURN_IF_ERROR(get_int("num_hidden_layers", &c.num_layers, true, 0));
  SS_RETURN_IF_ERROR(get_int("num_attention_heads", &c.num_heads, true, 0));
  SS_RETURN_IF_ERROR(get_int("num_key_value_heads", &c.num_kv_heads, false, c.num_heads));
  SS_RETURN_IF_ERROR(get_int("vocab_size", &c.vocab_size, true, 0));
  SS_RETURN_IF_ERROR(get_int("max_position_embeddings", &c.max_position_embeddings, false, 2048));
  if (c.hidden_size % c.num_heads != 0 && j.find("head_dim") == j.end())
    return field_err("hidden_size",
                     "must be a multiple of num_attention_heads (no head_dim given)");
  SS_RETURN_IF_ERROR(get_int("head_dim", &c.head_dim, false, c.hidden_size / c.num_heads));
  if (c.num_heads % c.num_kv_heads != 0)
    return field_err("num_key_value_heads", "must divide num_attention_heads (" +
                                                std::to_string(c.num_heads) + "), got " +
                                                std::to_string(c.num_kv_heads));
  // transformers 5.x writes rope_theta and the scaling into "rope_parameters".
  if (auto rp = j.find("rope_parameters"); rp != j.end() && rp->is_object()) {
    if (!j.contains("rope_theta") && rp->contains("rope_theta"))
      j["rope_theta"] = (*rp)["rope_theta"];
    if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) j["rope_scaling"] = *rp;
  }
  SS_RETURN_IF_ERROR(get_num("rope_theta", &c.rope_theta, 10000.0));
  SS_RETURN_IF_ERROR(get_num("rms_norm_eps", &c.rms_norm_eps, 1e-6));
  SS_ASSIGN_OR_RETURN(c.tie_word_embeddings, get_bool("tie_word_embeddings", false));
  if (c.arch == ModelArch::kQwen2) {
    c.qkv_bias = true;
  } else {
    SS_ASSIGN_OR_RETURN(bool ab, get_bool("attention_bias", false));
    SS_ASSIGN_OR_RETURN(c.mlp_bias, get_bool("mlp_bias", false));
    c.qkv_bias = c.o_bias = ab;
  }
  if (auto rs = j.find("rope_scaling"); rs != j.end() && !rs->is_null()) {
    if (!rs->is_object()) return field_err("rope_scaling", "must be an object or null");
    std::string kind = rs->value("rope_type", rs->value("type", std::string()));
    if (kind == "default" || kind.empty()) {
      // no scaling
    } else if (kind == "llama3") {
      c.rope_scaling.kind = "llama3";
      auto num = [&](const char* f, double* out) -> Status {
        auto it = rs->find(f);
        if (it == rs->end() || !it->is_number() || !(it->get<double>() > 0))
          return field_err(std::string("rope_scaling.") + f, "must be a positive number");
        *out = it->get<double>();
        return Status::Ok();
      };
      SS_RETURN_IF_ERROR(num("factor", &c.rope_scaling.factor));
      SS_RETURN_IF_ERROR(num("low_freq_factor", &c.rope_scaling.low_freq_factor));
      SS_RETURN_IF_ERROR(num("high_freq_factor", &c.rope_scaling.high_freq_factor));
      double omp = 0;
      SS_RETURN_IF_ERROR(num("original_max_position_embeddings", &omp));
      c.rope_scaling.original_max_position_embeddings = static_cast<int64_t>(omp);
    } else {
      return unsupported("'" + origin + "': rope_scaling type '" + kind +
                         "' is not supported (expected llama3 or none)");
    }
  }
  std::string td = j.value("torch_dtype", j.value("dtype", std::string("bfloat16")));
  if (td == "bfloat16")
    c.dtype = DType::kBF16;
  else if (td == "float16")
    c.dtype = DType::kF16;
  else if (td == "float32")
    c.dtype = DType::kF32;
  else
    return unsupported("'" + origin + "': torch_dtype '" + td +
                       "' is not supported (expected bfloat16, float16 or float32)");
  if (auto e = j.find("eos_token_id"); e != j.end()) {
    if (e->is_number_integer())
      c.eos_token_ids.push_back(e->get<int64_t>());
    else if (e->is_array())
      for (const json& v : *e)
        if (v.is_number_integer()) c.eos_token_ids.push_back(v.get<int64_t>());
  }
  if (auto b = j.find("bos_token_id"); b != j.end() && b->is_number_integer())
    c.bos_token_id = b->get<int64_t>();
  // Both families use SiLU in the MLP; another activation would be computed wrongly.
  if (auto act = j.find("hidden_act"); act != j.end() && !act->is_null()) {
    if (!act->is_string() || act->get<std::string>() != "silu")
      return unsupported("'" + origin + "': hidden_act " + act->dump() +
                         " is not supported (expected \"silu\")");
  }
  SS_RETURN_IF_ERROR(model_config_check_sizes(c, origin));
  return c;
}

Status model_config_check_sizes(const ModelConfig& c, const std::string& origin) {
  const struct {
    const char* name;
    int64_t v, max;
  } fields[] = {{"hidden_size", c.hidden_size, int64_t{1} << 17},
                {"intermediate_size", c.intermediate_size, int64_t{1} << 20},
                {"num_hidden_layers", c.num_layers, int64_t{1} << 10},
                {"num_attention_heads", c.num_heads, int64_t{1} << 10},
                {"num_key_value_heads", c.num_kv_heads, int64_t{1} << 10},
                {"head_dim", c.head_dim, int64_t{1} << 10},
                {"vocab_size", c.vocab_size, int64_t{1} << 22},
                {"max_position_embeddings", c.max_position_embeddings, int64_t{1} << 26}};
  for (const auto& f : fields)
    if (f.v <= 0 || f.v > f.max)
      return format_error("'" + origin + "': " + f.name + " = " + std::to_string(f.v) +
                          " is outside 1.." + std::to_string(f.max) + " (corrupt config?)");
  // Special tokens index the embedding like any other token (bos -1: none).
  std::vector<std::pair<const char*, int64_t>> ids;
  if (c.bos_token_id != -1) ids.push_back({"bos_token_id", c.bos_token_id});
  for (int64_t e : c.eos_token_ids) ids.push_back({"eos_token_id", e});
  for (const auto& [name, id] : ids)
    if (id < 0 || id >= c.vocab_size)
      return format_error("'" + origin + "': " + name + " = " + std::to_string(id) +
                          " is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
  return Status::Ok();
}

Expected<ModelConfig> model_config_load(const std::string& path) {
  SS_ASSIGN_OR_RETURN(std::string text, core::read_text_file(path));
  return model_config_parse(text, path);
}

std::string model_config_to_json(const ModelConfig& c) {
  json j;
  j["architectures"] = {model_arch_name(c.arch)};
  j["model_type"] = c.arch == ModelArch::kQwen2 ? "qwen2" : "llama";
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope_theta"] = c.rope_theta;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["hidden_act"] = "silu";
  j["initializer_range"] = 0.02;
  if (c.arch == ModelArch::kLlama) {
    j["attention_bias"] = c.qkv_bias;
    j["mlp_bias"] = c.mlp_bias;
  } else {
    j["use_sliding_window"] = false;
    j["sliding_window"] = c.max_position_embeddings;
    j["max_window_layers"] = c.num_layers;
  }
  if (c.rope_scaling.kind == "llama3") {
    j["rope_scaling"] = {
        {"rope_type", "llama3"},
        {"factor", c.rope_scaling.factor},
        {"low_freq_factor", c.rope_scaling.low_freq_factor},
        {"high_freq_factor", c.rope_scaling.high_freq_factor},
        {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["torch_dtype"] = c.dtype == DType::kF16   ? "float16"
                     : c.dtype == DType::kF32 ? "float32"
                                              : "bfloat16";
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1)
    j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty())
    j["eos_token_id"] = c.eos_token_ids;
  j["use_cache"] = true;
  return j.dump(2) + "\n";
}

std::vector<LinearSpec> model_linears(const ModelConfig& c) {
  std::vector<LinearSpec> out;
  const int64_t C = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  const int64_t I = c.intermediate_size;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    std::string a = "model.layers." + std::to_string(l) + ".self_attn.";
    std::string m = "model.layers." + std::to_string(l) + ".mlp.";
    out.push_back({a + "q_proj", LinearKind::kQ, l, q, C, c.qkv_bias});
    out.push_back({a + "k_proj", LinearKind::kK, l, kv, C, c.qkv_bias});
    out.push_back({a + "v_proj", LinearKind::kV, l, kv, C, c.qkv_bias});
    out.push_back({a + "o_proj", LinearKind::kO, l, C, q, c.o_bias});
    out.push_back({m + "gate_proj", LinearKind::kGate, l, I, C, c.mlp_bias});
    out.push_back({m + "up_proj", LinearKind::kUp, l, I, C, c.mlp_bias});
    out.push_back({m + "down_proj", LinearKind::kDown, l, C, I, c.mlp_bias});
  }
  return out;
}

std::vector<TensorInfo> model_tensors(const ModelConfig& c) {
  std::vector<TensorInfo> out;
  const DType t = c.dtype;
  out.push_back({"model.embed_tokens.weight", t, {c.vocab_size, c.hidden_size}});
  auto lin = model_linears(c);
  size_t li = 0;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({p + "input_layernorm.weight", t, {c.hidden_size}});
    for (int k = 0; k < 7; ++k, ++li) {
      const LinearSpec& s = lin[li];
      if (k == 4) out.push_back({p + "post_attention_layernorm.weight", t, {c.hidden_size}});
      out.push_back({s.weight_name(), t, {s.N, s.K}});
      if (s.has_bias) out.push_back({s.bias_name(), t, {s.N}});
    }
  }
  out.push_back({"model.norm.weight", t, {c.hidden_size}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", t, {c.vocab_size, c.hidden_size}});
  return out;
}

int64_t first_extra_layer_name(const std::vector<std::string>& names, const ModelConfig& c,
                               const std::string& prefix) {
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& n = names[i];
    if (n.compare(0, prefix.size(), prefix) != 0) continue;
    size_t p = prefix.size();
    int64_t layer = 0;
    bool digits = false;
    while (p < n.size() && n[p] >= '0' && n[p] <= '9' && layer <= c.num_layers) {
      layer = layer * 10 + (n[p++] - '0');
      digits = true;
    }
    if (digits && layer >= c.num_layers) return static_cast<int64_t>(i);
  }
  return -1;
}

int64_t linear_index_of_weight(const std::vector<LinearSpec>& linears, const std::string& tensor) {
  for (size_t i = 0; i < linears.size(); ++i)
    if (tensor.size() == linears[i].name.size() + 7 &&
        tensor.compare(0, linears[i].name.size(), linears[i].name) == 0 &&
        tensor.compare(linears[i].name.size(), 7, ".weight") == 0)
      return static_cast<int64_t>(i);
  return -1;
}

}  // namespace slidesparse
