// slidesparse: prune -> slide -> quantize -> compress checkpoints, evaluate and benchmark them.
#include <cstdio>
#include <exception>
#include <new>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli.h"

namespace slidesparse::cli {
namespace {

struct Entry {
  std::string parent, name, description;
  CommandSetup setup;
};

std::vector<Entry>& registry() {
  static std::vector<Entry> r;
  return r;
}

// What this binary was built with, for --version: a build without the CUTLASS GEMMs runs
// `--gemm-backend best` on the library GEMMs, which changes every W8A8 prefill timing.
const char* build_flavor() {
#if defined(SLIDESPARSE_WITH_CUTLASS)
  return "CUDA backend, CUTLASS sm90a GEMMs";
#elif defined(SLIDESPARSE_WITH_CUDA)
  return "CUDA backend, library GEMMs only: configured without -DSLIDESPARSE_CUTLASS=ON";
#else
  return "CPU only";
#endif
}

}  // namespace

CommandRegistrar::CommandRegistrar(const std::string& parent, const std::string& name,
                                   const std::string& description, CommandSetup setup) {
  registry().push_back({parent, name, description, std::move(setup)});
}

int exit_code_for(const Status& s) {
  if (s.ok()) return 0;
  return s.code() == StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace slidesparse::cli

int main(int argc, char** argv) {
  using namespace slidesparse;
  using namespace slidesparse::cli;
  CLI::App app{"slidesparse: run n:m-pruned LLMs (6:8, 4:6, 8:10) on 2:4 sparse tensor cores"};
  app.require_subcommand(1);
  app.set_version_flag("--version",
                       std::string("slidesparse " SLIDESPARSE_VERSION " (") + build_flavor() + ")");

  // Parents first (commands with nested subcommands, e.g. "bench", "eval"), then leaves.
  std::map<std::string, CLI::App*> parents;
  auto parent_of = [&](const std::string& name) -> CLI::App* {
    if (name.empty()) return &app;
    auto it = parents.find(name);
    if (it != parents.end()) return it->second;
    CLI::App* p = app.add_subcommand(name, name + " commands (see --help)");
    p->require_subcommand(1);
    parents[name] = p;
    return p;
  };
  std::vector<std::pair<CLI::App*, CommandFn>> bodies;
  for (auto& e : registry()) {
    CLI::App* sub = parent_of(e.parent)->add_subcommand(e.name, e.description);
    bodies.emplace_back(sub, e.setup(*sub));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // An unknown command word or top-level option is named (CLI11 would only say that a
    // subcommand is required, or that an argument was not expected).
    auto find_sub = [](CLI::App* a, const char* name) -> CLI::App* {
      try {
        return a->get_subcommand(name);
      } catch (const CLI::Error&) {
        return nullptr;
      }
    };
    const std::string w = argc > 1 ? argv[1] : "";
    CLI::App* top = w.empty() || w[0] == '-' ? nullptr : find_sub(&app, argv[1]);
    if (!w.empty() && w[0] == '-' && w != "-h" && w != "--help" && w != "--version")
      std::fprintf(stderr, "slidesparse: error: unknown option '%s' (see --help)\n", argv[1]);
    else if (!w.empty() && w[0] != '-' && !top)
      std::fprintf(stderr, "slidesparse: error: unknown command '%s' (see --help)\n", argv[1]);
    else if (top && parents.count(w) && argc > 2 && argv[2][0] != '-' && !find_sub(top, argv[2]))
      std::fprintf(stderr, "slidesparse: error: unknown command '%s %s' (see %s --help)\n", argv[1],
                   argv[2], argv[1]);
    else if (top && parents.count(w) && (argc == 2 || argv[2][0] == '-'))
      std::fprintf(stderr, "slidesparse: error: '%s' needs a subcommand (see %s --help)\n", argv[1],
                   argv[1]);
    else if (argc == 1)
      std::fprintf(stderr, "slidesparse: error: a command is required (see --help)\n");
    else
      std::fprintf(stderr, "slidesparse: error: %s (see --help)\n", e.what());
    return 2;
  }
  for (auto& [sub, body] : bodies) {
    if (!sub->parsed()) continue;
    // Every error is a Status; an exception that still escapes (an allocation the input made
    // too large, a library's) is reported the same way instead of aborting.
    Status s = Status::Ok();
    try {
      s = body();
    } catch (const std::bad_alloc&) {
      s = Status(StatusCode::kOutOfMemory, "out of memory (is the input's size plausible?)");
    } catch (const std::exception& e) {
      s = Status(StatusCode::kInternal, std::string("unexpected failure: ") + e.what());
    }
    if (!s.ok()) {
      std::fprintf(stderr, "slidesparse %s: error: %s\n", sub->get_name().c_str(),
                   s.message().c_str());
    }
    return exit_code_for(s);
  }
  return 2;
}
