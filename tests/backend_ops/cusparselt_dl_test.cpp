// cuSPARSELt is loaded at run time: a missing library is one clear error from the sparse layers,
// and the CLI still starts (its CPU commands work). Needs no GPU.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "cuda/cusparselt_dl.h"
#include "e2e/cli_test_util.h"

namespace slidesparse {
namespace {

// The loader runs once per process: each case runs in a child process.
int in_child(const char* env_path) {
  pid_t pid = fork();
  if (pid == 0) {
    if (env_path)
      setenv("SLIDESPARSE_CUSPARSELT", env_path, 1);
    else
      unsetenv("SLIDESPARSE_CUSPARSELT");
    Status s = cuda::cusparselt_load();
    if (!env_path) _exit(s.ok() ? 0 : 10);
    const std::string m = s.message();
    const bool clear = s.code() == StatusCode::kUnsupported && m.find('\n') == std::string::npos &&
                       m.find("cuSPARSELt library not found") != std::string::npos &&
                       m.find(env_path) != std::string::npos &&
                       m.find("SLIDESPARSE_CUSPARSELT") != std::string::npos;
    _exit(clear ? 0 : 11);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(CuSparseLtLoader, MissingLibraryIsOneClearError) {
  EXPECT_EQ(in_child("/nonexistent/libcusparseLt.so.0"), 0);
}

TEST(CuSparseLtLoader, LoadsTheInstalledLibrary) {
  // LD_LIBRARY_PATH or the library found at build time (scripts/setup.sh's .deps/cusparselt).
  EXPECT_EQ(in_child(nullptr), 0);
}

TEST(CuSparseLtLoader, CliStartsWithoutTheLibrary) {
  const std::string dir = std::string(SS_TEST_TMP) + "/cusparselt_dl";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string cmd = "SLIDESPARSE_CUSPARSELT=/nonexistent/libcusparseLt.so.0 " +
                          test::cli_path() + " synth --arch tiny-llama --out " + dir +
                          "/tiny >/dev/null 2>&1";
  const int rc = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << cmd;
  EXPECT_TRUE(std::filesystem::exists(dir + "/tiny/config.json"));
}

}  // namespace
}  // namespace slidesparse
