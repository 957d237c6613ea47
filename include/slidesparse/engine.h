// What the CLI's eval/generate/convert need from the engine: text inputs, sliding-window
// perplexity, Wanda calibration and sampling.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "slidesparse/model.h"
#include "slidesparse/status.h"

namespace slidesparse {

// A text file for evaluation or calibration: must exist, be non-empty, and be UTF-8 text (no NUL
// bytes, valid UTF-8); otherwise one error line naming the file.
Expected<std::string> load_text_file(const std::string& path);

// The default texts: English prose from the Debian `fortunes` package (literature, science,
// wisdom under /usr/share/games/fortunes). Entries ("%"-separated) are deduplicated in file order;
// entry i goes to calibration when i % 5 == 4, else to evaluation: the two never overlap.
constexpr const char* kFortunesDir = "/usr/share/games/fortunes";
Expected<std::string> default_eval_text();
Expected<std::string> default_calib_text();

struct PplResult {
  double ppl = 0, ppl_stderr = 0;  // exp(mean NLL); stderr by the delta method: ppl * se(NLL)
  double nll_mean = 0, nll_stderr = 0;
  int64_t scored_tokens = 0, forwarded_tokens = 0;
  int64_t ctx = 0, stride = 0;
  double seconds = 0, tokens_per_s = 0;  // forwarded tokens per second of forward passes
};

// Sliding-window perplexity (Hugging Face's recipe): windows of `ctx` tokens advancing by
// `stride`; each window scores only the tokens not scored before, with all of the window as
// context. With stride < ctx every token but the first is scored exactly once; with stride == ctx
// the first token of each window (no context) is not scored.
Expected<PplResult> eval_perplexity(Model& m, const std::vector<int32_t>& tokens, int64_t ctx,
                                    int64_t stride);

// Runs the model over `tokens` in windows of `ctx` and returns, per linear, the L2 norm of each
// input channel over all tokens (Wanda's ||x_k||_2).
Expected<std::map<std::string, std::vector<float>>> calibrate_act_norms(
    Model& m, const std::vector<int32_t>& tokens, int64_t ctx);

// Greedy (temperature 0) or top-p sampling of one token from logits [vocab].
struct SamplerState {
  uint64_t rng = 0x853c49e6748fea9bULL;
};
int32_t sample_token(const float* logits, int64_t vocab, float temperature, float top_p,
                     SamplerState* st);

}  // namespace slidesparse
