// File-system helpers: atomic files and atomic output directories.
#include "core/fs_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace slidesparse::core {
namespace fs = std::filesystem;

std::string errno_str(int err) {
  return std::strerror(err);
}

Expected<std::string> read_text_file(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return not_found("'" + path + "': file not found");
    return io_error("cannot open '" + path + "': " + errno_str(e));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return io_error("'" + path + "': not a regular file");
  }
  if (static_cast<size_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return format_error("'" + path + "': " + std::to_string(st.st_size) +
                        " bytes, expected at most " + std::to_string(max_bytes));
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t r = ::read(fd, out.data() + got, out.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int e = errno;
      ::close(fd);
      return io_error("cannot read '" + path + "': " + (r == 0 ? "unexpected end" : errno_str(e)));
    }
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  return out;
}

Status fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open directory '" + dir + "': " + errno_str(errno));
  ::fsync(fd);
  ::close(fd);
  return Status::Ok();
}

namespace {
std::atomic<int> g_counter{0};

std::string temp_name_for(const std::string& path, const char* what) {
  std::string dir = path_dirname(path), base = path_basename(path);
  return path_join(dir, "." + base + "." + what + "-" + std::to_string(::getpid()) + "-" +
                            std::to_string(g_counter.fetch_add(1)));
}

Status write_all(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return io_error("cannot write '" + path + "': " + errno_str(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}
}  // namespace

Status write_file_atomic(const std::string& path, const std::string& contents) {
  return write_file_atomic(path, contents.data(), contents.size());
}

Status write_file_atomic(const std::string& path, const void* data, size_t size) {
  std::string tmp = temp_name_for(path, "tmp");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("cannot create '" + path + "': " + errno_str(errno));
  Status s = write_all(fd, static_cast<const char*>(data), size, path);
  if (s.ok() && ::fsync(fd) != 0) s = io_error("cannot fsync '" + path + "': " + errno_str(errno));
  ::close(fd);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0)
    s = io_error("cannot rename into '" + path + "': " + errno_str(errno));
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  return fsync_dir(path_dirname(path));
}

Status copy_file_atomic(const std::string& src, const std::string& dst) {
  SS_ASSIGN_OR_RETURN(std::string data, read_text_file(src, size_t{1} << 31));
  return write_file_atomic(dst, data);
}

Status check_output_file(const std::string& path, const std::vector<std::string>& inputs,
                         const std::string& flag) {
  if (path.empty()) return invalid_argument(flag + ": empty path");
  if (is_dir(path))
    return invalid_argument(flag + " '" + path + "' is a directory, expected a file");
  for (const std::string& in : inputs)
    if (same_path(in, path) || path_within(path, in))
      return invalid_argument(flag + " '" + path + "' is the input '" + in +
                              "' or lies inside it; choose another " + flag);
  return Status::Ok();
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool is_dir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool same_path(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool path_within(const std::string& inner, const std::string& outer) {
  std::error_code ec;
  fs::path o = fs::weakly_canonical(outer, ec);
  if (ec) return false;
  fs::path i = fs::weakly_canonical(inner, ec);
  if (ec) return false;
  auto oi = o.begin(), ii = i.begin();
  for (; oi != o.end(); ++oi, ++ii) {
    if (oi->empty()) continue;  // trailing separator
    if (ii == i.end() || *oi != *ii) return false;
  }
  return true;
}

std::string path_join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

std::string path_dirname(const std::string& p) {
  std::string s = p;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  size_t k = s.find_last_of('/');
  if (k == std::string::npos) return ".";
  if (k == 0) return "/";
  return s.substr(0, k);
}

std::string path_basename(const std::string& p) {
  std::string s = p;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  size_t k = s.find_last_of('/');
  return k == std::string::npos ? s : s.substr(k + 1);
}

void remove_tree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

// ---- OutputDir
// ------------------------------------------------------------------------------------

Expected<OutputDir> OutputDir::create(const std::string& final_path, bool force,
                                      const std::vector<std::string>& inputs) {
  if (final_path.empty()) return invalid_argument("output directory: empty path");
  for (const std::string& in : inputs) {
    if (same_path(in, final_path) || path_within(final_path, in))
      return invalid_argument("output '" + final_path + "' is the input '" + in +
                              "' or lies inside it; choose another --out");
    if (path_within(in, final_path))
      return invalid_argument("output '" + final_path + "' contains the input '" + in +
                              "'; choose another --out");
  }
  if (path_exists(final_path) && !force)
    return already_exists("output '" + final_path + "' exists (use --force to replace it)");
  OutputDir d;
  d.final_ = final_path;
  while (d.final_.size() > 1 && d.final_.back() == '/') d.final_.pop_back();
  d.force_ = force;
  d.tmp_ = temp_name_for(final_path, "tmp");
  if (::mkdir(d.tmp_.c_str(), 0755) != 0)
    return io_error("cannot create output directory '" + final_path + "': " + errno_str(errno));
  d.committed_ = false;
  return d;
}

OutputDir::OutputDir(OutputDir&& o) noexcept
    : final_(std::move(o.final_)),
      tmp_(std::move(o.tmp_)),
      force_(o.force_),
      committed_(o.committed_) {
  o.committed_ = true;
}

OutputDir& OutputDir::operator=(OutputDir&& o) noexcept {
  if (this != &o) {
    if (!committed_) remove_tree(tmp_);
    final_ = std::move(o.final_);
    tmp_ = std::move(o.tmp_);
    force_ = o.force_;
    committed_ = o.committed_;
    o.committed_ = true;
  }
  return *this;
}

OutputDir::~OutputDir() {
  if (!committed_) remove_tree(tmp_);
}

Status OutputDir::commit() {
  if (committed_) return internal_error("output '" + final_ + "' committed twice");
  SS_RETURN_IF_ERROR(fsync_dir(tmp_));
  std::string old;
  if (path_exists(final_)) {
    if (!force_)
      return already_exists("output '" + final_ + "' exists (use --force to replace it)");
    old = temp_name_for(final_, "old");
    if (::rename(final_.c_str(), old.c_str()) != 0)
      return io_error("cannot move the old '" + final_ + "' aside: " + errno_str(errno));
  }
  if (::rename(tmp_.c_str(), final_.c_str()) != 0) {
    Status s = io_error("cannot rename the output into '" + final_ + "': " + errno_str(errno));
    if (!old.empty()) ::rename(old.c_str(), final_.c_str());
    return s;
  }
  committed_ = true;
  if (!old.empty()) remove_tree(old);
  return fsync_dir(path_dirname(final_));
}

}  // namespace slidesparse::core
