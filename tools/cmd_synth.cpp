// `slidesparse synth`: a random-weight bf16 Hugging Face checkpoint with real model shapes.
#include <cstdio>

#include "cli.h"
#include "slidesparse/safetensors.h"
#include "slidesparse/synth.h"

namespace slidesparse::cli {
namespace {

CommandRegistrar reg(
    "", "synth", "write a random-weight bf16 HF checkpoint with real model shapes",
    [](CLI::App& sub) -> CommandFn {
      auto opt = std::make_shared<SynthOptions>();
      auto shard = std::make_shared<std::string>();
      std::string archs;
      for (const auto& a : synth_arch_names()) archs += (archs.empty() ? "" : ", ") + a;
      sub.add_option("--arch", opt->arch, "architecture: " + archs)->required();
      sub.add_option("--out", opt->out, "output directory")->required();
      sub.add_option("--seed", opt->seed, "random seed (default 0)")->check(kDigits);
      sub.add_flag("--force", opt->force, "replace an existing output directory");
      sub.add_option("--threads", opt->threads, "threads (default: all cores)")
          ->check(CLI::Range(1, 4096));
      sub.add_option("--max-shard-size", *shard, "shard when larger, e.g. 4GB (default 4GiB)");
      sub.add_flag("--progress", opt->progress, "one progress line per tensor");
      sub.add_flag("--config-only", opt->config_only,
                   "write config.json and generation_config.json only (no "
                   "weights)");
      return [opt, shard]() -> Status {
        if (!shard->empty()) {
          SS_ASSIGN_OR_RETURN(opt->max_shard_bytes, parse_byte_size(*shard));
        }
        SS_RETURN_IF_ERROR(synth_checkpoint(*opt));
        if (opt->config_only) {
          std::printf("wrote %s/config.json (%s)\n", opt->out.c_str(), opt->arch.c_str());
          return Status::Ok();
        }
        std::printf("wrote %s (%s, seed %llu)\n", opt->out.c_str(), opt->arch.c_str(),
                    static_cast<unsigned long long>(opt->seed));
        return Status::Ok();
      };
    });

}  // namespace
}  // namespace slidesparse::cli
