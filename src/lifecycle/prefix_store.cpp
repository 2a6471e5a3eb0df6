// PrefixStore (include/qwen3vl/lifecycle/prefix_store.hpp): the key chain, the in-memory index
// over the slot file, and the gathers between a layer's paged storage and a unit's bytes.
#include "qwen3vl/lifecycle/prefix_store.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <unordered_map>
#include <utility>

namespace qwen3vl::lifecycle {
namespace {

uint64_t mix(uint64_t h, uint64_t v) {
  // splitmix64's finaliser over the running state and the next value.
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 27;
  h *= 0x94D049BB133111EBull;
  return h ^ (h >> 31);
}

constexpr size_t kBatchUnits = 64;  // units per submit: keeps the file store's queue full

}  // namespace

uint64_t block_key(uint64_t previous, const TokenSpan& span, int64_t begin, int64_t count) {
  uint64_t h = mix(previous, static_cast<uint64_t>(count));
  for (int64_t i = begin; i < begin + count; ++i) {
    h = mix(h, static_cast<uint32_t>(span.token_ids[i]));
    for (int64_t a = 0; a < span.axes; ++a)
      h = mix(h, static_cast<uint32_t>(span.positions ? span.positions[a * span.tokens + i]
                                                      : static_cast<int32_t>(i)));
  }
  return h;
}

uint64_t layer_key(uint64_t block, int32_t layer) {
  return mix(block, 0x4c41594552000000ull | static_cast<uint32_t>(layer));
}

struct PrefixStore::Impl {
  std::unique_ptr<FileStore> file;
  std::unordered_map<uint64_t, int64_t> index;   // key -> slot
  std::vector<char> used;                        // per slot: holds an indexed unit
  std::vector<uint64_t> key_of;                  // per slot, when used
  std::vector<uint64_t> last_use;                // per slot: its tick in `order`
  std::set<std::pair<uint64_t, int64_t>> order;  // (last use, slot) of the used slots, oldest first
  std::vector<int64_t> free_slots;
  uint64_t tick = 0, version = 0;
  PrefixStoreStats stats;

  void init(int64_t slots) {
    used.assign(static_cast<size_t>(slots), 0);
    key_of.assign(static_cast<size_t>(slots), 0);
    last_use.assign(static_cast<size_t>(slots), 0);
  }
  void forget(int64_t slot) {
    if (!used[static_cast<size_t>(slot)]) return;
    index.erase(key_of[static_cast<size_t>(slot)]);
    used[static_cast<size_t>(slot)] = 0;
    order.erase({last_use[static_cast<size_t>(slot)], slot});
    --stats.units;
  }
  // A used slot's last use becomes `t` (it enters the order if it was not in it).
  void set_use(int64_t slot, uint64_t t) {
    order.erase({last_use[static_cast<size_t>(slot)], slot});
    last_use[static_cast<size_t>(slot)] = t;
    order.insert({t, slot});
  }
  // A slot to write into: a free one, else the least recently used unit not in `busy`.
  int64_t take(const std::vector<int64_t>& busy) {
    if (!free_slots.empty()) {
      const int64_t s = free_slots.back();
      free_slots.pop_back();
      return s;
    }
    // The batch's slots are not in the order yet (indexed when their writes finish).
    for (const std::pair<uint64_t, int64_t>& entry : order) {
      const int64_t slot = entry.second;  // a copy: forget() erases the entry
      if (std::find(busy.begin(), busy.end(), slot) != busy.end()) continue;
      forget(slot);
      ++stats.evicted;
      return slot;
    }
    return -1;
  }
  void touch(int64_t slot) { set_use(slot, ++tick); }
};

namespace {

// The checks save() and load() share: the layers' storage is host, paged over `table`, and one
// unit of each is the store's unit.
Status check_layers(const KvPageTable& table, const std::vector<const KvLayerStorage*>& layers,
                    size_t unit_bytes, int64_t seq, const TokenSpan& span) {
  if (!table.created() || table.config().layout != KvLayout::kPaged)
    return make_error(StatusCode::kInvalidArgument, "table: must be a created paged table");
  if (layers.empty())
    return make_error(StatusCode::kInvalidArgument, "layers: empty: pass every layer's storage");
  for (size_t l = 0; l < layers.size(); ++l) {
    const KvLayerStorage* s = layers[l];
    if (s == nullptr || !s->created())
      return make_error(StatusCode::kInvalidArgument, "layers[", l, "]: null or not created");
    if (s->k().device != Device::kCPU)
      return make_error(StatusCode::kUnsupported, "layers[", l,
                        "].k.device = ", to_string(s->k().device),
                        ": the prefix store reads host storage");
    if (s->table_config() != table.config())
      return make_error(StatusCode::kInvalidArgument, "layers[", l, "]: laid out by another table");
    const size_t bytes =
        2 * static_cast<size_t>(table.config().block_size * s->kv_heads() * s->head_dim()) *
        size_of(s->k().dtype);
    if (bytes != unit_bytes || s->v().dtype != s->k().dtype)
      return make_error(StatusCode::kInvalidArgument, "layers[", l, "]: a block of K and V is ",
                        bytes, " bytes (", to_string(s->k().dtype), "): the store's unit is ",
                        unit_bytes, " bytes");
  }
  if (seq < 0 || seq >= table.config().batch)
    return make_error(StatusCode::kInvalidArgument, "seq = ", seq, ": allowed 0..",
                      table.config().batch - 1);
  if (span.tokens < 0 || (span.tokens > 0 && span.token_ids == nullptr) || span.axes < 1 ||
      span.axes > 3)
    return make_error(StatusCode::kInvalidArgument, "span: tokens = ", span.tokens, ", token_ids ",
                      span.token_ids ? "set" : "null", ", axes = ", span.axes,
                      ": allowed tokens >= 0 with token_ids, axes 1..3");
  return Status();
}

// Rows [0, block_size) of block `id` of one of a layer's K or V views, packed, and back.
void gather(const TensorView& t, int64_t id, unsigned char* dst) {
  const size_t e = size_of(t.dtype), row = static_cast<size_t>(t.shape[3]) * e;
  for (int64_t r = 0; r < t.shape[1]; ++r)
    for (int64_t h = 0; h < t.shape[2]; ++h) {
      const auto* src =
          static_cast<const unsigned char*>(t.data) +
          static_cast<size_t>(id * t.stride[0] + r * t.stride[1] + h * t.stride[2]) * e;
      std::memcpy(dst, src, row);
      dst += row;
    }
}

}  // namespace

PrefixStore::PrefixStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PrefixStore::~PrefixStore() = default;

Status PrefixStore::create(const std::string& path, size_t unit_bytes, int64_t slots,
                           const FileStoreOptions& options, std::unique_ptr<PrefixStore>* out) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null");
  auto m = std::make_unique<Impl>();
  QWEN3VL_RETURN_IF_ERROR(FileStore::create(path, unit_bytes, slots, options, &m->file));
  m->init(slots);
  for (int64_t s = slots - 1; s >= 0; --s) m->free_slots.push_back(s);
  out->reset(new PrefixStore(std::move(m)));
  return Status();
}

Status PrefixStore::open(const std::string& path, const FileStoreOptions& options,
                         std::unique_ptr<PrefixStore>* out, RecoveryReport* report) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null");
  auto m = std::make_unique<Impl>();
  QWEN3VL_RETURN_IF_ERROR(FileStore::open(path, options, &m->file));
  RecoveryReport found;
  QWEN3VL_RETURN_IF_ERROR(m->file->recover(&found));
  m->init(m->file->slots());
  // The newest version of a key wins (an older copy is a slot reused before a crash).
  std::sort(found.valid.begin(), found.valid.end(),
            [](const SlotRecord& a, const SlotRecord& b) { return a.version < b.version; });
  for (const SlotRecord& r : found.valid) {
    auto it = m->index.find(r.tag);
    if (it != m->index.end()) m->forget(it->second);
    m->index[r.tag] = r.slot;
    m->used[static_cast<size_t>(r.slot)] = 1;
    m->key_of[static_cast<size_t>(r.slot)] = r.tag;
    m->set_use(r.slot, r.version);
    m->version = std::max(m->version, r.version);
    ++m->stats.units;
  }
  m->tick = m->version;
  for (int64_t s = m->file->slots() - 1; s >= 0; --s)
    if (!m->used[static_cast<size_t>(s)]) m->free_slots.push_back(s);
  m->stats.dropped_on_open = static_cast<int64_t>(found.dropped.size());
  if (report != nullptr) *report = std::move(found);
  out->reset(new PrefixStore(std::move(m)));
  return Status();
}

Status PrefixStore::save(const KvPageTable& table, const std::vector<const KvLayerStorage*>& layers,
                         int64_t seq, const TokenSpan& span, int64_t* saved) {
  Impl& m = *impl_;
  const size_t unit = m.file->block_bytes();
  QWEN3VL_RETURN_IF_ERROR(check_layers(table, layers, unit, seq, span));
  const int64_t bs = table.config().block_size;
  const int64_t blocks = std::min<int64_t>(span.tokens, table.length(seq)) / bs;
  const size_t half = unit / 2;
  std::vector<unsigned char> staging(kBatchUnits * unit);
  std::vector<IoRequest> batch;
  std::vector<int64_t> busy;  // slots of the batch in flight
  int64_t written = 0;
  Status error;
  const auto flush = [&]() {
    if (batch.empty()) return;
    Status st = m.file->submit(batch.data(), batch.size());
    Status waited = m.file->wait();
    for (const IoRequest& r : batch) {
      if (r.status.ok()) {
        m.index[r.tag] = r.slot;
        m.used[static_cast<size_t>(r.slot)] = 1;
        m.key_of[static_cast<size_t>(r.slot)] = r.tag;
        m.touch(r.slot);
        ++m.stats.units;
        ++written;
      } else {
        m.free_slots.push_back(r.slot);  // unknown contents: never indexed
      }
    }
    if (error.ok()) error = !st.ok() ? st : waited;
    batch.clear();
    busy.clear();
  };
  uint64_t bk = 0;
  for (int64_t j = 0; j < blocks && error.ok(); ++j) {
    bk = block_key(bk, span, j * bs, bs);
    const int32_t id =
        table.block_table()[static_cast<size_t>(seq * table.config().max_blocks + j)];
    for (size_t l = 0; l < layers.size(); ++l) {
      const uint64_t key = layer_key(bk, static_cast<int32_t>(l));
      auto it = m.index.find(key);
      if (it != m.index.end()) {
        m.touch(it->second);
        ++m.stats.skipped;
        continue;
      }
      const int64_t slot = m.take(busy);
      if (slot < 0) {
        error = make_error(StatusCode::kOutOfMemory, "prefix store: every slot is in this batch");
        break;
      }
      unsigned char* buffer = staging.data() + batch.size() * unit;
      gather(layers[l]->k(), id, buffer);
      gather(layers[l]->v(), id, buffer + half);
      IoRequest r;
      r.op = IoOp::kWrite;
      r.slot = slot;
      r.buffer = buffer;
      r.tag = key;
      r.version = ++m.version;
      batch.push_back(r);
      busy.push_back(slot);
      if (batch.size() == kBatchUnits) flush();
    }
  }
  flush();
  m.stats.written += written;
  if (saved != nullptr) *saved = written;
  return error;
}

Status PrefixStore::load(KvPageTable& table, const std::vector<const KvLayerStorage*>& layers,
                         int64_t seq, const TokenSpan& span, int64_t* restored) {
  Impl& m = *impl_;
  if (restored == nullptr) return make_error(StatusCode::kNullPointer, "restored = null");
  *restored = 0;
  const size_t unit = m.file->block_bytes();
  QWEN3VL_RETURN_IF_ERROR(check_layers(table, layers, unit, seq, span));
  if (table.length(seq) != 0)
    return make_error(StatusCode::kInvalidArgument, "seq = ", seq, ": holds ", table.length(seq),
                      " tokens: load restores into an empty sequence");
  const KvTableConfig& tc = table.config();
  const int64_t bs = tc.block_size;
  // The longest prefix stored in every layer.
  std::vector<uint64_t> keys;  // [block][layer]
  uint64_t bk = 0;
  int64_t blocks = 0;
  for (int64_t j = 0; (j + 1) * bs <= span.tokens && j < tc.max_blocks; ++j) {
    bk = block_key(bk, span, j * bs, bs);
    bool all = true;
    for (size_t l = 0; l < layers.size() && all; ++l)
      all = m.index.count(layer_key(bk, static_cast<int32_t>(l))) > 0;
    if (!all) break;
    for (size_t l = 0; l < layers.size(); ++l)
      keys.push_back(layer_key(bk, static_cast<int32_t>(l)));
    ++blocks;
  }
  if (blocks == 0) return Status();
  const int64_t rows = blocks * bs;
  std::vector<int32_t> cu(static_cast<size_t>(tc.batch + 1), 0);
  for (int64_t b = 0; b < tc.batch; ++b)
    cu[static_cast<size_t>(b + 1)] = cu[static_cast<size_t>(b)] + (b == seq ? rows : 0);
  QWEN3VL_RETURN_IF_ERROR(
      table.begin_append(rows, TensorView::contiguous(cu.data(), DType::kI32, {tc.batch + 1})));
  const size_t half = unit / 2;
  std::vector<unsigned char> units(static_cast<size_t>(blocks) * unit);
  std::vector<unsigned char> k_rows(static_cast<size_t>(blocks) * half),
      v_rows(static_cast<size_t>(blocks) * half);
  std::vector<IoRequest> requests(static_cast<size_t>(blocks));
  Status st;
  for (size_t l = 0; l < layers.size() && st.ok(); ++l) {
    for (int64_t j = 0; j < blocks; ++j) {
      IoRequest& r = requests[static_cast<size_t>(j)];
      r = IoRequest{};
      r.op = IoOp::kRead;
      r.tag = keys[static_cast<size_t>(j) * layers.size() + l];
      r.check_tag = true;
      r.slot = m.index.at(r.tag);
      r.buffer = units.data() + static_cast<size_t>(j) * unit;
    }
    st = m.file->submit(requests.data(), requests.size());
    Status waited = m.file->wait();
    if (st.ok()) st = waited;
    if (!st.ok()) break;
    for (int64_t j = 0; j < blocks; ++j) {
      m.touch(requests[static_cast<size_t>(j)].slot);
      std::memcpy(k_rows.data() + static_cast<size_t>(j) * half,
                  units.data() + static_cast<size_t>(j) * unit, half);
      std::memcpy(v_rows.data() + static_cast<size_t>(j) * half,
                  units.data() + static_cast<size_t>(j) * unit + half, half);
    }
    m.stats.read += blocks;
    const KvLayerStorage& s = *layers[l];
    const TensorView k =
        TensorView::contiguous(k_rows.data(), s.k().dtype, {rows, s.kv_heads(), s.head_dim()});
    const TensorView v =
        TensorView::contiguous(v_rows.data(), s.k().dtype, {rows, s.kv_heads(), s.head_dim()});
    st = s.apply(table, k, v);
  }
  if (!st.ok()) {
    (void)table.abort();
    return st;
  }
  QWEN3VL_RETURN_IF_ERROR(table.commit());
  *restored = rows;
  return Status();
}

bool PrefixStore::contains(uint64_t key) const { return impl_->index.count(key) > 0; }
const PrefixStoreStats& PrefixStore::stats() const { return impl_->stats; }

std::string PrefixStore::describe() const {
  const Impl& m = *impl_;
  return detail::concat("prefix store: ", m.stats.units, " of ", m.file->slots(), " units of ",
                        m.file->block_bytes(), " bytes (", m.file->describe(), ")");
}

}  // namespace qwen3vl::lifecycle
