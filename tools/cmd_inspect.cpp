// `slidesparse inspect`: per linear, re-verify the n:m pattern (mask popcounts, padding, values),
// sparsity, bytes vs dense; totals. Works on SlideSparse and plain HF checkpoints.
#include <cstdio>

#include "cli.h"
#include "slidesparse/checkpoint.h"

namespace slidesparse::cli {
namespace {

CommandRegistrar reg("", "inspect", "verify and summarize a SlideSparse (or HF) checkpoint",
                     [](CLI::App& sub) -> CommandFn {
                       auto dir = std::make_shared<std::string>();
                       auto as_json = std::make_shared<bool>(false);
                       auto threads = std::make_shared<int>(0);
                       sub.add_option("dir", *dir, "checkpoint directory")->required();
                       sub.add_flag("--json", *as_json, "JSON on stdout");
                       sub.add_option("--threads", *threads, "threads (default: all cores)")
                           ->check(CLI::Range(1, 4096));
                       return [dir, as_json, threads]() -> Status {
                         SS_ASSIGN_OR_RETURN(InspectReport r, inspect_checkpoint(*dir, *threads));
                         std::string text = *as_json ? r.to_json() : r.to_text();
                         std::fputs(text.c_str(), stdout);
                         std::fflush(stdout);
                         // The report names every failed tensor; the error line the first.
                         for (const auto& l : r.linears)
                           if (!l.verified)
                             return format_error("checkpoint '" + *dir + "': " + l.problem);
                         return Status::Ok();
                       };
                     });

}  // namespace
}  // namespace slidesparse::cli
