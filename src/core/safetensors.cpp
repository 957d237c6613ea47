// Safetensors reader (mmap, every length/offset/shape checked against the file), atomic streaming
// writer, and sharded Hugging Face checkpoint directories.
#include "slidesparse/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/fs_util.h"

namespace slidesparse {
namespace {

using json = nlohmann::json;
constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // like the reference implementation

Status bad(const std::string& path, const std::string& what) {
  return format_error("safetensors '" + path + "': " + what);
}

// nbytes = prod(shape) * elem, with overflow checks; false on overflow.
bool checked_nbytes(const Shape& shape, size_t elem, size_t* out) {
  size_t n = elem;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d != 0 && n > SIZE_MAX / static_cast<size_t>(d)) return false;
    n *= static_cast<size_t>(d);
  }
  *out = n;
  return true;
}

}  // namespace

// ---- reader
// ---------------------------------------------------------------------------------------

Expected<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return not_found("safetensors '" + path + "': file not found");
    return io_error("cannot open safetensors '" + path + "': " + core::errno_str(e));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return io_error("safetensors '" + path + "': not a regular file");
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return bad(path,
               "file is " + std::to_string(size) + " bytes, expected at least 8 (header length)");
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) return io_error("cannot mmap '" + path + "': " + core::errno_str(map_err));

  SafetensorsFile f;
  f.path_ = path;
  f.map_ = map;
  f.size_ = size;
  const auto* bytes = static_cast<const uint8_t*>(map);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | bytes[i];
  if (hlen > size - 8)
    return bad(path, "header length " + std::to_string(hlen) + " runs past the end of the file (" +
                         std::to_string(size) + " bytes)");
  if (hlen > kMaxHeaderBytes)
    return bad(path, "header length " + std::to_string(hlen) + " exceeds the 100 MB limit");
  const size_t data0 = 8 + static_cast<size_t>(hlen);
  const size_t data_size = size - data0;

  // Parse, rejecting duplicate top-level keys (nlohmann would silently keep the last one).
  std::set<std::string> keys;
  std::string dup;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (depth == 1 && ev == json::parse_event_t::key && parsed.is_string()) {
      if (!keys.insert(parsed.get<std::string>()).second && dup.empty())
        dup = parsed.get<std::string>();
    }
    return true;
  };
  const char* h = reinterpret_cast<const char*>(bytes + 8);
  json header = json::parse(h, h + hlen, cb, /*allow_exceptions=*/false);
  if (header.is_discarded()) return bad(path, "header is not valid JSON");
  if (!header.is_object()) return bad(path, "header is not a JSON object");
  if (!dup.empty()) return bad(path, "tensor '" + dup + "' appears twice in the header");

  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return bad(path, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          return bad(path, "__metadata__ value '" + m.key() + "' is not a string");
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    std::string tn = "tensor '" + name + "': ";
    if (!v.is_object()) return bad(path, tn + "entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) return bad(path, tn + "missing string 'dtype'");
    if (sh == v.end() || !sh->is_array()) return bad(path, tn + "missing array 'shape'");
    if (off == v.end() || !off->is_array() || off->size() != 2)
      return bad(path, tn + "'data_offsets' must be [begin, end]");
    Entry e;
    e.info.name = name;
    auto dtype = dtype_from_name(dt->get<std::string>());
    if (!dtype.ok())
      return unsupported("safetensors '" + path + "': " + tn + "unsupported dtype '" +
                         dt->get<std::string>() + "'");
    e.info.dtype = *dtype;
    for (const json& d : *sh) {
      if (!d.is_number_unsigned())
        return bad(path, tn + "shape " + sh->dump() + " must hold non-negative integers");
      e.info.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
      if (e.info.shape.back() < 0) return bad(path, tn + "dimension too large in " + sh->dump());
    }
    for (const json& o : *off)
      if (!o.is_number_unsigned())
        return bad(path, tn + "data_offsets " + off->dump() + " must be non-negative integers");
    uint64_t b = (*off)[0].get<uint64_t>(), en = (*off)[1].get<uint64_t>();
    if (b > en) return bad(path, tn + "data_offsets " + off->dump() + " have begin > end");
    if (en > data_size)
      return bad(path, tn + "data_offsets " + off->dump() + " run past the end of the data (" +
                           std::to_string(data_size) + " bytes)");
    size_t nbytes = 0;
    if (!checked_nbytes(e.info.shape, dtype_size(e.info.dtype), &nbytes) || nbytes != en - b)
      return bad(path, tn + "shape " + shape_str(e.info.shape) + " of " + dtype_name(e.info.dtype) +
                           " needs " + std::to_string(nbytes) + " bytes, data_offsets give " +
                           std::to_string(en - b));
    e.begin = data0 + b;
    e.end = data0 + en;
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  size_t cursor = data0;
  for (const Entry& e : entries) {
    if (e.begin < cursor)
      return bad(path, "tensor '" + e.info.name + "' overlaps the previous tensor");
    if (e.begin > cursor)
      return bad(path, "tensor '" + e.info.name + "' leaves a hole of " +
                           std::to_string(e.begin - cursor) +
                           " bytes before it (data must be contiguous)");
    cursor = e.end;
  }
  if (cursor != size)
    return bad(path, std::to_string(size - cursor) + " trailing bytes after the last tensor");
  for (Entry& e : entries) {
    f.names_.push_back(e.info.name);
    f.index_.emplace(e.info.name, std::move(e));
  }
  return f;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept {
  *this = std::move(o);
}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(map_, size_);
    path_ = std::move(o.path_);
    map_ = o.map_;
    size_ = o.size_;
    names_ = std::move(o.names_);
    index_ = std::move(o.index_);
    metadata_ = std::move(o.metadata_);
    o.map_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

Expected<TensorInfo> SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return not_found("safetensors '" + path_ + "': no tensor '" + name + "'");
  return it->second.info;
}

Expected<TensorView> SafetensorsFile::view(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return not_found("safetensors '" + path_ + "': no tensor '" + name + "'");
  const Entry& e = it->second;
  TensorView v;
  v.dtype = e.info.dtype;
  v.shape = e.info.shape;
  v.data = static_cast<const uint8_t*>(map_) + e.begin;
  v.nbytes = e.end - e.begin;
  return v;
}

void SafetensorsFile::release(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end() || !map_) return;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  size_t b = it->second.begin / page * page;
  size_t e = std::min(size_, (it->second.end + page - 1) / page * page);
  if (e > b) ::madvise(static_cast<uint8_t*>(map_) + b, e - b, MADV_DONTNEED);
}

// ---- writer
// ---------------------------------------------------------------------------------------

Expected<SafetensorsWriter> SafetensorsWriter::create(
    const std::string& path, const std::vector<TensorInfo>& tensors,
    const std::map<std::string, std::string>& metadata) {
  // Layout: element size descending, then declaration order -> every tensor aligned.
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return dtype_size(tensors[a].dtype) > dtype_size(tensors[b].dtype);
  });
  SafetensorsWriter w;
  w.path_ = path;
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t off = 0;
  for (size_t i : order) {
    const TensorInfo& t = tensors[i];
    if (t.name.empty() || t.name == "__metadata__")
      return invalid_argument("safetensors '" + path + "': invalid tensor name '" + t.name + "'");
    size_t nbytes = 0;
    if (!checked_nbytes(t.shape, dtype_size(t.dtype), &nbytes))
      return invalid_argument("safetensors '" + path + "': tensor '" + t.name + "' shape " +
                              shape_str(t.shape) + " is invalid");
    if (w.slots_.count(t.name))
      return invalid_argument("safetensors '" + path + "': tensor '" + t.name + "' declared twice");
    json shape = json::array();
    for (int64_t d : t.shape) shape.push_back(d);
    header[t.name] = {
        {"dtype", dtype_name(t.dtype)}, {"shape", shape}, {"data_offsets", {off, off + nbytes}}};
    w.slots_[t.name] = Slot{off, nbytes, 0};
    off += nbytes;
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');
  const size_t data0 = 8 + h.size();
  for (auto& [name, slot] : w.slots_) slot.begin += data0;
  w.total_ = data0 + off;

  w.tmp_path_ = core::path_join(core::path_dirname(path), "." + core::path_basename(path) +
                                                              ".tmp-" + std::to_string(::getpid()));
  w.fd_ = ::open(w.tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w.fd_ < 0) return io_error("cannot create '" + path + "': " + core::errno_str(errno));
  uint8_t len[8];
  uint64_t hl = h.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(hl >> (8 * i));
  std::string prefix(reinterpret_cast<const char*>(len), 8);
  prefix += h;
  size_t done = 0;
  while (done < prefix.size()) {
    ssize_t r =
        ::pwrite(w.fd_, prefix.data() + done, prefix.size() - done, static_cast<off_t>(done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return io_error("cannot write '" + path + "': " + core::errno_str(errno));
    done += static_cast<size_t>(r);
  }
  if (::ftruncate(w.fd_, static_cast<off_t>(w.total_)) != 0)
    return io_error("cannot size '" + path + "' to " + std::to_string(w.total_) +
                    " bytes: " + core::errno_str(errno));
  return w;
}

SafetensorsWriter::SafetensorsWriter(SafetensorsWriter&& o) noexcept {
  *this = std::move(o);
}

SafetensorsWriter& SafetensorsWriter::operator=(SafetensorsWriter&& o) noexcept {
  if (this != &o) {
    abandon();
    path_ = std::move(o.path_);
    tmp_path_ = std::move(o.tmp_path_);
    fd_ = o.fd_;
    total_ = o.total_;
    slots_ = std::move(o.slots_);
    o.fd_ = -1;
  }
  return *this;
}

SafetensorsWriter::~SafetensorsWriter() {
  abandon();
}

void SafetensorsWriter::abandon() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_path_.c_str());
    fd_ = -1;
  }
}

Status SafetensorsWriter::write(const std::string& name, const void* data, size_t nbytes,
                                size_t offset) {
  if (fd_ < 0) return internal_error("safetensors '" + path_ + "': write after finish");
  auto it = slots_.find(name);
  if (it == slots_.end())
    return internal_error("safetensors '" + path_ + "': tensor '" + name + "' was not declared");
  Slot& s = it->second;
  if (offset > s.nbytes || nbytes > s.nbytes - offset)
    return internal_error("safetensors '" + path_ + "': tensor '" + name + "' write of " +
                          std::to_string(nbytes) + " bytes at " + std::to_string(offset) +
                          " exceeds its " + std::to_string(s.nbytes) + " bytes");
  const char* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < nbytes) {
    ssize_t r = ::pwrite(fd_, p + done, nbytes - done, static_cast<off_t>(s.begin + offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return io_error("cannot write '" + path_ + "': " + core::errno_str(errno));
    done += static_cast<size_t>(r);
  }
  s.written += nbytes;
  return Status::Ok();
}

Status SafetensorsWriter::finish() {
  if (fd_ < 0) return internal_error("safetensors '" + path_ + "': finish twice");
  for (const auto& [name, s] : slots_)
    if (s.written != s.nbytes)
      return internal_error("safetensors '" + path_ + "': tensor '" + name + "' got " +
                            std::to_string(s.written) + " of " + std::to_string(s.nbytes) +
                            " bytes");
  if (::fsync(fd_) != 0) return io_error("cannot fsync '" + path_ + "': " + core::errno_str(errno));
  if (::close(fd_) != 0) {
    fd_ = -1;
    ::unlink(tmp_path_.c_str());
    return io_error("cannot close '" + path_ + "': " + core::errno_str(errno));
  }
  fd_ = -1;
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp_path_.c_str());
    return io_error("cannot rename into '" + path_ + "': " + core::errno_str(e));
  }
  return core::fsync_dir(core::path_dirname(path_));
}

// ---- directories
// ----------------------------------------------------------------------------------

Expected<TensorStore> TensorStore::open_dir(const std::string& dir) {
  if (!core::is_dir(dir)) {
    if (!core::path_exists(dir)) return not_found("checkpoint '" + dir + "': directory not found");
    return invalid_argument("checkpoint '" + dir + "': not a directory");
  }
  TensorStore st;
  st.dir_ = dir;
  std::string index_path = core::path_join(dir, "model.safetensors.index.json");
  std::vector<std::string> shards;
  std::map<std::string, std::string> weight_map;
  if (core::path_exists(index_path)) {
    SS_ASSIGN_OR_RETURN(std::string text, core::read_text_file(index_path));
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return format_error("'" + index_path + "': not a JSON object");
    auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object())
      return format_error("'" + index_path + "': missing object 'weight_map'");
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string())
        return format_error("'" + index_path + "': weight_map['" + it.key() +
                            "'] is not a file name");
      std::string shard = it.value().get<std::string>();
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
        return format_error("'" + index_path + "': weight_map['" + it.key() + "'] = '" + shard +
                            "' is not a plain file name in the directory");
      weight_map[it.key()] = shard;
      if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
    }
    std::sort(shards.begin(), shards.end());
  } else {
    shards.push_back("model.safetensors");
    if (!core::path_exists(core::path_join(dir, shards[0])))
      return not_found("checkpoint '" + dir +
                       "': neither model.safetensors nor model.safetensors.index.json found");
  }
  for (const std::string& shard : shards) {
    SS_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::open(core::path_join(dir, shard)));
    size_t idx = st.files_.size();
    for (const std::string& n : f.names()) {
      if (!weight_map.empty()) {
        auto w = weight_map.find(n);
        if (w == weight_map.end() || w->second != shard)
          return format_error("'" + index_path + "': tensor '" + n + "' of shard '" + shard +
                              "' is not mapped to that shard");
      }
      if (st.where_.count(n))
        return format_error("checkpoint '" + dir + "': tensor '" + n + "' appears in two shards");
      st.where_[n] = idx;
      st.names_.push_back(n);
    }
    st.files_.push_back(std::move(f));
  }
  for (const auto& [n, shard] : weight_map)
    if (!st.where_.count(n))
      return format_error("'" + index_path + "': tensor '" + n + "' is not in shard '" + shard +
                          "'");
  return st;
}

Expected<TensorInfo> TensorStore::info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) return not_found("checkpoint '" + dir_ + "': no tensor '" + name + "'");
  return files_[it->second].info(name);
}

Expected<TensorView> TensorStore::view(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) return not_found("checkpoint '" + dir_ + "': no tensor '" + name + "'");
  return files_[it->second].view(name);
}

void TensorStore::release(const std::string& name) const {
  auto it = where_.find(name);
  if (it != where_.end()) files_[it->second].release(name);
}

std::string TensorStore::file_of(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? std::string() : files_[it->second].path();
}

size_t TensorStore::total_bytes() const {
  size_t n = 0;
  for (const auto& f : files_) n += f.file_size();
  return n;
}

Expected<size_t> parse_byte_size(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  std::string num = text.substr(0, i), unit = text.substr(i);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double mult = 0;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "KB")
    mult = 1e3;
  else if (unit == "MB")
    mult = 1e6;
  else if (unit == "GB")
    mult = 1e9;
  else if (unit == "KIB")
    mult = 1024.0;
  else if (unit == "MIB")
    mult = 1024.0 * 1024;
  else if (unit == "GIB")
    mult = 1024.0 * 1024 * 1024;
  char* end = nullptr;
  double v = num.empty() ? -1 : std::strtod(num.c_str(), &end);
  if (mult == 0 || num.empty() || end != num.c_str() + num.size())
    return invalid_argument("size '" + text + "': expected e.g. 4GB, 500MB, 2GiB or a byte count");
  if (!(v * mult >= 1) || v * mult > 1e18)
    return invalid_argument("size '" + text + "': must be at least 1 byte and at most 1e18 bytes");
  return static_cast<size_t>(v * mult);
}

Expected<ShardedWriter> ShardedWriter::create(const std::string& dir,
                                              const std::vector<TensorInfo>& tensors,
                                              size_t max_shard_bytes,
                                              const std::map<std::string, std::string>& metadata) {
  std::vector<std::vector<TensorInfo>> groups(1);
  size_t cur = 0;
  for (const TensorInfo& t : tensors) {
    size_t nb = t.nbytes();
    if (cur > 0 && cur + nb > max_shard_bytes) {
      groups.emplace_back();
      cur = 0;
    }
    groups.back().push_back(t);
    cur += nb;
  }
  ShardedWriter w;
  w.dir_ = dir;
  const size_t n = groups.size();
  for (size_t g = 0; g < n; ++g) {
    std::string name = "model.safetensors";
    if (n > 1) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", g + 1, n);
      name = buf;
    }
    std::map<std::string, std::string> md = metadata;
    if (!md.count("format")) md["format"] = "pt";
    SS_ASSIGN_OR_RETURN(SafetensorsWriter sw,
                        SafetensorsWriter::create(core::path_join(dir, name), groups[g], md));
    for (const TensorInfo& t : groups[g]) {
      w.where_[t.name] = w.writers_.size();
      w.tensor_bytes_[t.name] = t.nbytes();
    }
    w.writers_.push_back(std::move(sw));
    w.shard_names_.push_back(name);
  }
  return w;
}

Status ShardedWriter::write(const std::string& name, const void* data, size_t nbytes,
                            size_t offset) {
  auto it = where_.find(name);
  if (it == where_.end())
    return internal_error("checkpoint '" + dir_ + "': tensor '" + name + "' was not declared");
  return writers_[it->second].write(name, data, nbytes, offset);
}

size_t ShardedWriter::total_bytes() const {
  size_t n = 0;
  for (const auto& w : writers_) n += w.total_bytes();
  return n;
}

Status ShardedWriter::finish() {
  for (auto& w : writers_) SS_RETURN_IF_ERROR(w.finish());
  if (writers_.size() > 1) {
    json wm = json::object();
    size_t data = 0;
    for (const auto& [name, idx] : where_) wm[name] = shard_names_[idx];
    for (const auto& [name, idx] : where_) data += tensor_bytes_.at(name);
    json j = {{"metadata", {{"total_size", data}}}, {"weight_map", wm}};
    SS_RETURN_IF_ERROR(core::write_file_atomic(
        core::path_join(dir_, "model.safetensors.index.json"), j.dump(2) + "\n"));
  }
  return Status::Ok();
}

}  // namespace slidesparse
