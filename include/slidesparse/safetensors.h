// Safetensors files and Hugging Face checkpoint directories: a bounds-checked mmap reader, an
// atomic streaming writer, and sharded directories (model.safetensors.index.json).
//
// File layout: u64 little-endian header length L, L bytes of JSON header
// {"__metadata__": {str: str}, name: {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}},
// then the data buffer; offsets are relative to the data buffer. The reader rejects (one error line
// naming file and tensor): a file shorter than 8 bytes, L past the end of the file or > 100 MB, bad
// JSON, duplicate names, unknown dtypes, negative/non-integer dims, begin > end, end past the data,
// nbytes != numel * dtype_size, overlapping tensors, holes and trailing bytes (the data buffer must
// be exactly covered, as the reference implementation requires).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "slidesparse/dtype.h"
#include "slidesparse/status.h"
#include "slidesparse/tensor.h"

namespace slidesparse {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  size_t nbytes() const { return static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype); }
};

// One .safetensors file, mmap'd read-only. Views stay valid while the object lives. Movable.
class SafetensorsFile {
 public:
  static Expected<SafetensorsFile> open(const std::string& path);
  SafetensorsFile(SafetensorsFile&& o) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& o) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  // Tensor names in data order (ascending offset).
  const std::vector<std::string>& names() const { return names_; }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  Expected<TensorInfo> info(const std::string& name) const;
  // A view into the mapping. The data pointer is aligned to the element size when the writer
  // aligned it (ours does; Hugging Face's does); otherwise read it with memcpy.
  Expected<TensorView> view(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t file_size() const { return size_; }
  // Drop the tensor's pages from this process (madvise DONTNEED; the page cache keeps them):
  // keeps the resident set bounded when a large checkpoint is streamed tensor by tensor.
  void release(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  struct Entry {
    TensorInfo info;
    size_t begin = 0, end = 0;  // absolute file offsets
  };
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::vector<std::string> names_;
  std::map<std::string, Entry> index_;
  std::map<std::string, std::string> metadata_;
};

// Streaming, atomic writer of one .safetensors file. All tensors are declared up front (so the
// header is known), then their data is written in any order, whole or in chunks, with pwrite at
// the known offsets: nothing is held in memory. finish() checks every byte was written, fsyncs and
// renames the temp file (same directory) over `path`; destroying an unfinished writer removes
// the temp file. Tensors are laid out by element size, largest first, so every tensor is aligned
// to its element size (the header is padded to a multiple of 8).
class SafetensorsWriter {
 public:
  static Expected<SafetensorsWriter> create(
      const std::string& path, const std::vector<TensorInfo>& tensors,
      const std::map<std::string, std::string>& metadata = {});
  SafetensorsWriter(SafetensorsWriter&& o) noexcept;
  SafetensorsWriter& operator=(SafetensorsWriter&& o) noexcept;
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  ~SafetensorsWriter();

  bool has(const std::string& name) const { return slots_.count(name) != 0; }
  // Writes nbytes of tensor `name` starting at byte `offset` within the tensor.
  Status write(const std::string& name, const void* data, size_t nbytes, size_t offset = 0);
  Status finish();
  const std::string& path() const { return path_; }
  size_t total_bytes() const { return total_; }

 private:
  SafetensorsWriter() = default;
  void abandon();
  struct Slot {
    size_t begin = 0, nbytes = 0, written = 0;
  };
  std::string path_, tmp_path_;
  int fd_ = -1;
  size_t total_ = 0;
  std::map<std::string, Slot> slots_;
};

// ---- Hugging Face checkpoint directories
// ---------------------------------------------------------

// All safetensors tensors of a directory: model.safetensors, or the shards named by
// model.safetensors.index.json ({"metadata": {...}, "weight_map": {tensor: shard file}}). Shard
// names must be plain file names in the directory; every tensor of the map must be in its shard
// and every shard tensor in the map.
class TensorStore {
 public:
  static Expected<TensorStore> open_dir(const std::string& dir);
  const std::string& dir() const { return dir_; }
  // Tensor names in file order (shards in index order).
  const std::vector<std::string>& names() const { return names_; }
  bool has(const std::string& name) const { return where_.count(name) != 0; }
  Expected<TensorInfo> info(const std::string& name) const;
  Expected<TensorView> view(const std::string& name) const;
  void release(const std::string& name) const;
  // Which file holds `name` (full path).
  std::string file_of(const std::string& name) const;
  size_t total_bytes() const;

 private:
  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::vector<std::string> names_;
  std::map<std::string, size_t> where_;  // name -> index in files_
};

// Parses "4GB", "500MB", "1.5GiB", "123456" (bytes). Decimal units: KB/MB/GB; binary: KiB/MiB/GiB.
Expected<size_t> parse_byte_size(const std::string& text);
constexpr size_t kDefaultMaxShardBytes = size_t{4} << 30;  // 4 GiB, like HF's default order

// Writes a checkpoint directory's tensors: one model.safetensors when the total fits in
// max_shard_bytes, else model-0000i-of-0000n.safetensors + model.safetensors.index.json (tensors
// kept in declaration order, a new shard started when the next tensor would overflow the current
// one). Same streaming write API as SafetensorsWriter; finish() finishes every shard and then
// writes the index.
class ShardedWriter {
 public:
  static Expected<ShardedWriter> create(const std::string& dir,
                                        const std::vector<TensorInfo>& tensors,
                                        size_t max_shard_bytes = kDefaultMaxShardBytes,
                                        const std::map<std::string, std::string>& metadata = {});
  Status write(const std::string& name, const void* data, size_t nbytes, size_t offset = 0);
  Status finish();
  size_t shards() const { return writers_.size(); }
  size_t total_bytes() const;

 private:
  std::string dir_;
  std::vector<SafetensorsWriter> writers_;
  std::vector<std::string> shard_names_;
  std::map<std::string, size_t> where_;
  std::map<std::string, size_t> tensor_bytes_;
};

}  // namespace slidesparse
