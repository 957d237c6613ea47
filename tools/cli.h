// The slidesparse CLI is thin: each command file registers a subcommand that parses flags, calls
// the library and turns a Status into one error line and an exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "slidesparse/status.h"

namespace slidesparse::cli {

// A command's body: runs after parsing; returns the Status to report.
using CommandFn = std::function<Status()>;

// Called once at start-up with the subcommand; the setup adds options and returns the body.
using CommandSetup = std::function<CommandFn(CLI::App& sub)>;

struct CommandRegistrar {
  // parent: "" for top-level commands, or e.g. "bench", "eval" for nested ones.
  CommandRegistrar(const std::string& parent, const std::string& name,
                   const std::string& description, CommandSetup setup);
};

// Option check: decimal digits only (a seed; CLI11 would wrap "-1" to 2^64 - 1).
inline const CLI::Validator kDigits(
    [](std::string& v) -> std::string {
      return !v.empty() && v.size() <= 19 && v.find_first_not_of("0123456789") == std::string::npos
                 ? std::string()
                 : "'" + v + "' is not a non-negative integer below 10^19";
    },
    "UINT");

// Option check: a value that is not empty (a path or size given as '').
inline const CLI::Validator kNonEmpty(
    [](std::string& v) -> std::string { return v.empty() ? "empty value" : std::string(); },
    "TEXT");

// Exit codes: 0 ok, 1 error reported by the library, 2 usage error.
int exit_code_for(const Status& s);

}  // namespace slidesparse::cli
