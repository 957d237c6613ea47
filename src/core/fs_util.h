// File-system helpers for atomic outputs: whole files (temp + fsync + rename) and whole output
// directories (written into a temp sibling, renamed into place at the end, removed on failure).
#pragma once

#include <string>
#include <vector>

#include "slidesparse/status.h"

namespace slidesparse::core {

// errno as text, e.g. "No such file or directory".
std::string errno_str(int err);

Expected<std::string> read_text_file(const std::string& path, size_t max_bytes = 64u << 20);
// Temp file in the same directory, fsync, rename, fsync of the directory.
Status write_file_atomic(const std::string& path, const std::string& contents);
Status write_file_atomic(const std::string& path, const void* data, size_t size);
// An output file path a command may write: not empty, not a directory, not one of `inputs` nor
// inside one of them (a model directory). A one-line error naming `flag` otherwise.
Status check_output_file(const std::string& path, const std::vector<std::string>& inputs,
                         const std::string& flag);
// Byte copy through a temp file (atomic like write_file_atomic).
Status copy_file_atomic(const std::string& src, const std::string& dst);
Status fsync_dir(const std::string& dir);
bool path_exists(const std::string& path);
bool is_dir(const std::string& path);
// Same file or directory (device + inode); false if either does not exist.
bool same_path(const std::string& a, const std::string& b);
// True if `inner` is `outer` or lies below it (canonical paths; inner need not exist).
bool path_within(const std::string& inner, const std::string& outer);
std::string path_join(const std::string& a, const std::string& b);
std::string path_dirname(const std::string& p);
std::string path_basename(const std::string& p);
// Recursive delete; ignores a missing path.
void remove_tree(const std::string& path);

// An output directory that appears whole or not at all. create() refuses an existing `final`
// unless force, refuses a `final` equal to or inside any of `inputs`, and makes a temp sibling
// ".<name>.tmp-<pid>-<n>". Write into path(); commit() renames it to `final` (replacing the old
// one when force); the destructor removes an uncommitted temp directory.
class OutputDir {
 public:
  static Expected<OutputDir> create(const std::string& final_path, bool force,
                                    const std::vector<std::string>& inputs = {});
  OutputDir(OutputDir&& o) noexcept;
  OutputDir& operator=(OutputDir&& o) noexcept;
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;
  ~OutputDir();

  const std::string& path() const { return tmp_; }
  const std::string& final_path() const { return final_; }
  Status commit();

 private:
  OutputDir() = default;
  std::string final_, tmp_;
  bool force_ = false, committed_ = true;
};

}  // namespace slidesparse::core
