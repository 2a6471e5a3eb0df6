// PrefixStore: a content-addressed, persistent store of KV blocks. A block is named by what
// produced it: a hash chained over the token ids and positions of every block up to and including
// it, mixed with the layer. A repeated prompt prefix (a system prompt, the same image) finds its
// KV again, in this process or after a restart.
//
// The index is the slot file itself: each slot's checksummed header carries the block's key as
// its tag (FileStore, block_store.hpp), so there is no second file to keep consistent. open()
// rebuilds the index from the headers; a slot torn by a crash mid-write fails its checksum and is
// dropped, never served. A save() that returned ok survives the process being killed (the writes
// are O_DIRECT or pwrite, done before it returns); surviving power loss would also need the
// device's cache flushed, which this store does not do.
//
// Keys are 64-bit: two different prefixes collide with probability about n^2 / 2^65 for n stored
// blocks (1e-9 at n = 2e5).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qwen3vl/kv_cache/layer_storage.hpp"
#include "qwen3vl/kv_cache/page_table.hpp"
#include "qwen3vl/lifecycle/block_store.hpp"

namespace qwen3vl::lifecycle {

// The token ids of a sequence and their positions: positions [axes][tokens] row-major (1 axis
// for RoPE, 3 for M-RoPE's t, h, w), or null for positions 0, 1, 2, ... .
struct TokenSpan {
  const int32_t* token_ids = nullptr;
  const int32_t* positions = nullptr;
  int64_t tokens = 0;
  int64_t axes = 1;
};

// The chained key of the block of tokens [begin, begin + count) after the block keyed `previous`
// (0 for the first block), and a layer's key of it.
uint64_t block_key(uint64_t previous, const TokenSpan& span, int64_t begin, int64_t count);
uint64_t layer_key(uint64_t block, int32_t layer);

struct PrefixStoreStats {
  int64_t units = 0;            // stored (layer, block) units
  int64_t dropped_on_open = 0;  // torn or corrupt slots found by open()
  int64_t written = 0, skipped = 0, read = 0, evicted = 0;
};

class PrefixStore {
 public:
  // A new store of `slots` units of `unit_bytes` (one layer's K then V of one block) at path.
  [[nodiscard]] static Status create(const std::string& path, size_t unit_bytes, int64_t slots,
                                     const FileStoreOptions& options,
                                     std::unique_ptr<PrefixStore>* out);
  // An existing store, its index rebuilt from the slot headers (report: what recover() found).
  [[nodiscard]] static Status open(const std::string& path, const FileStoreOptions& options,
                                   std::unique_ptr<PrefixStore>* out,
                                   RecoveryReport* report = nullptr);
  ~PrefixStore();

  // Stores every full block of sequence `seq` (tokens [0, floor(span.tokens / block) * block),
  // at most the sequence's length) in every layer, skipping units already stored. When the store
  // is full the least recently used units make room. layers[l] is layer l's storage (host memory,
  // paged, created over `table`). *saved (optional): units written.
  [[nodiscard]] Status save(const KvPageTable& table,
                            const std::vector<const KvLayerStorage*>& layers, int64_t seq,
                            const TokenSpan& span, int64_t* saved = nullptr);
  // Appends to empty sequence `seq` the longest block-aligned prefix of `span` stored for every
  // layer, bit for bit as saved (one append step through the table; the other sequences get no
  // rows). *restored: tokens restored (0 when the first block is missing). A read that fails its
  // checks is the error, and the table is left as before.
  [[nodiscard]] Status load(KvPageTable& table, const std::vector<const KvLayerStorage*>& layers,
                            int64_t seq, const TokenSpan& span, int64_t* restored);

  bool contains(uint64_t key) const;
  const PrefixStoreStats& stats() const;
  std::string describe() const;

  struct Impl;

 private:
  explicit PrefixStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qwen3vl::lifecycle
