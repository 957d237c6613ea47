// Shared by the tests that run the CLI: the `slidesparse` binary (SS_CLI, or $SS_CLI_OVERRIDE when
// the test binary runs away from its build tree, as on the device machine), run with arguments,
// capturing its exit code, stdout and stderr; whole-file read/write helpers.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace slidesparse::test {

struct CliRun {
  int rc = -1;
  std::string out, err;
};

inline std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline void write_all(const std::string& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(s.data(), static_cast<std::streamsize>(s.size()));
}

inline std::string cli_path() {
  const char* o = std::getenv("SS_CLI_OVERRIDE");
  return o && *o ? std::string(o) : std::string(SS_CLI);
}

// `cli_path() args` with stdout and stderr redirected to files in `scratch` (one process at a time
// per scratch directory).
inline CliRun run_cli(const std::string& scratch, const std::string& args) {
  const std::string o = scratch + "/out.txt", e = scratch + "/err.txt";
  const std::string cmd = cli_path() + " " + args + " >" + o + " 2>" + e;
  CliRun r;
  const int st = std::system(cmd.c_str());
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = read_all(o);
  r.err = read_all(e);
  return r;
}

}  // namespace slidesparse::test
