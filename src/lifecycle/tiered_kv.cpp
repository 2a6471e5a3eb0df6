// TieredKvStore: the arena, the stores, and the mover that runs the residency table's plans (a
// worker thread, or the calling thread). See include/qwen3vl/lifecycle/tiered_kv.hpp.
#include "qwen3vl/lifecycle/tiered_kv.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "qwen3vl/core/checked_math.hpp"
#include "qwen3vl/kv_cache/layer_storage.hpp"
#include "src/kv_cache/kv_source.hpp"

namespace qwen3vl::lifecycle {

int64_t TieredKvStats::bytes_moved(size_t unit_bytes) const {
  int64_t units = 0;
  for (const auto& row : units_moved)
    for (int64_t n : row) units += n;
  return units * static_cast<int64_t>(unit_bytes);
}

struct TieredKvStore::Impl {
  // A begun move handed to the copier, with what the caller's thread decided for it.
  struct Job {
    uint64_t ticket = 0;
    Move move;
    bool carry = false;    // the unit holds bytes (a fresh unit is not read back)
    uint64_t version = 0;  // stamped into the store slot by a write
  };
  struct Done {
    Job job;
    Status status;
  };
  // A planned move whose destination slot is vacated by the move of ticket `after`.
  struct Deferred {
    uint64_t ticket = 0, after = 0;
    Move move;
  };
  // A failed copy into the arena: the unit stayed in its store; the next acquire that reads it
  // reports the error.
  struct Failure {
    UnitId unit;
    Status status;
  };

  TieredKvConfig config;
  KvTableConfig table;
  int64_t block_elems = 0;  // one layer's K (or V) of one block, in elements
  size_t unit_bytes = 0;    // K then V of one block: the arena slot and the store payload
  std::unique_ptr<Arena> arena;
  std::unique_ptr<HostStore> host;
  std::unique_ptr<FileStore> disk;
  std::string disk_description;
  ResidencyTable residency;
  std::vector<unsigned char> staging;       // one unit, for host <-> disk moves (the copier's)
  std::vector<bool> allocated;              // per block id, as of the last sync
  std::vector<bool> written;                // per unit: holds bytes (a fresh unit is not read back)
  std::vector<uint64_t> versions;           // per unit: bumped by each write to a store
  std::vector<std::vector<UnitId>> pinned;  // per layer: what acquire() pinned
  std::vector<int32_t> slot_table;          // acquire()'s block table of arena slots
  TieredKvStats stats;

  // Caller's thread only: moves begun and not yet applied, moves waiting for an eviction,
  // failed reads not yet reported.
  uint64_t next_ticket = 1;
  int64_t outstanding = 0;
  std::vector<Deferred> deferred;
  std::vector<Failure> failures;
  Status evict_error;             // the first failed eviction copy since evict_all() began
  std::vector<Done> inline_done;  // synchronous mode: copies done on the caller's thread
  std::vector<Job> wave;          // synchronous mode: moves begun, copied together by run_wave()

  // Shared with the worker, under mu.
  std::mutex mu;
  std::condition_variable work_cv, done_cv;
  std::deque<Job> queue;
  std::vector<Done> done;
  double worker_busy_ms = 0;
  bool stopping = false;
  std::thread worker;

  ~Impl() {
    if (worker.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mu);
        stopping = true;
      }
      work_cv.notify_all();
      worker.join();  // it copies what is queued first: the stores outlive every copy
    }
  }

  size_t index(UnitId u) const {
    return static_cast<size_t>(u.layer) * static_cast<size_t>(table.num_blocks) +
           static_cast<size_t>(u.block);
  }
  // The host address of an arena unit (a host arena: the async mover and store reads use it).
  unsigned char* arena_unit(int32_t slot) const { return arena->host_address(slot); }
  bool staged() const { return arena->host_address(0) == nullptr; }
  BlockStore* store(Tier t) const {
    return t == Tier::kHost   ? static_cast<BlockStore*>(host.get())
           : t == Tier::kDisk ? static_cast<BlockStore*>(disk.get())
                              : nullptr;
  }
  Status check_table(const KvPageTable& t, const char* what) const {
    if (t.config() != table)
      return make_error(StatusCode::kInvalidArgument, what, ": the table (", t.describe(),
                        ") is not the one this store was created for");
    return Status();
  }

  // The store slot's tag: which unit it holds, so a misdirected read is kDataCorrupt.
  static uint64_t tag_of(UnitId u) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(u.layer)) << 32) |
           static_cast<uint32_t>(u.block);
  }

  // The copier: reads only the job, the arena slots the move holds, the stores and staging. The
  // arena is in host memory here (the asynchronous mover needs one; run_wave stages device ones).
  Status copy(const Job& job) {
    const Move& m = job.move;
    if (!job.carry) return Status();  // admitted, never written: nothing to carry
    const uint64_t tag = tag_of(m.unit);
    if (m.from == Tier::kDevice)
      return store(m.to)->write(m.to_slot, arena_unit(m.from_slot), tag, job.version);
    if (m.to == Tier::kDevice) return store(m.from)->read(m.from_slot, arena_unit(m.to_slot), &tag);
    QWEN3VL_RETURN_IF_ERROR(store(m.from)->read(m.from_slot, staging.data(), &tag));
    return store(m.to)->write(m.to_slot, staging.data(), tag, job.version);
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      work_cv.wait(lock, [&] { return stopping || !queue.empty(); });
      if (queue.empty()) return;  // stopping, and every queued move copied
      Job job = std::move(queue.front());
      queue.pop_front();
      lock.unlock();
      const auto t0 = std::chrono::steady_clock::now();
      Status st = copy(job);
      const double ms = ms_since(t0);
      lock.lock();
      worker_busy_ms += ms;
      done.push_back(Done{std::move(job), std::move(st)});
      done_cv.notify_all();
    }
  }

  static double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }

  // Begins a move in the table and hands it to the copier; a move the table refuses (a stale
  // deferred one) is dropped with its dependents.
  void start(const Move& m, uint64_t ticket) {
    if (!residency.begin_move(m).ok()) {
      settle_dependents(ticket, false, Status());
      return;
    }
    const size_t i = index(m.unit);
    // Into its own disk copy: the bytes are there already.
    Job job{ticket, m, written[i] && !m.clean, 0};
    if (m.to != Tier::kDevice && job.carry) job.version = ++versions[i];
    ++outstanding;
    if (!config.async_mover) {
      wave.push_back(std::move(job));  // copied with the rest of its wave (run_wave)
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      queue.push_back(std::move(job));
    }
    work_cv.notify_one();
  }

  // The moves waiting for `ticket`: started when it finished (done), else dropped with it (a
  // failed or refused eviction), a read into the arena among them then reported like a failed one
  // when `why` is an error.
  void settle_dependents(uint64_t ticket, bool done, const Status& why) {
    for (size_t k = 0; k < deferred.size();) {
      if (deferred[k].after != ticket) {
        ++k;
        continue;
      }
      const Deferred d = deferred[k];
      deferred.erase(deferred.begin() + static_cast<std::ptrdiff_t>(k));
      if (done) {
        start(d.move, d.ticket);
      } else {
        if (!why.ok() && d.move.to == Tier::kDevice) failures.push_back(Failure{d.move.unit, why});
        settle_dependents(d.ticket, false, why);
      }
      k = 0;
    }
  }

  void forget_failures(UnitId u) {
    failures.erase(std::remove_if(failures.begin(), failures.end(),
                                  [&](const Failure& f) { return f.unit == u; }),
                   failures.end());
  }

  // Applies one finished copy to the table, then starts the moves that waited for it.
  Status complete(Done& d) {
    --outstanding;
    const Move& m = d.job.move;
    if (!d.status.ok()) {
      QWEN3VL_RETURN_IF_ERROR(residency.abort_move(m.unit));  // stays where it was, intact
      ++stats.failed;
      if (m.to == Tier::kDevice)
        failures.push_back(Failure{m.unit, d.status});
      else if (evict_error.ok())
        evict_error = d.status;
      settle_dependents(d.job.ticket, false, d.status);
      return Status();
    }
    QWEN3VL_RETURN_IF_ERROR(residency.finish_move(m.unit));
    if (m.clean)
      ++stats.clean_drops;
    else
      stats.units_moved[static_cast<size_t>(m.from)][static_cast<size_t>(m.to)] += 1;
    if (m.why == MoveReason::kEvict) ++stats.evicted;
    if (m.why == MoveReason::kPrefetch) ++stats.prefetched;
    if (m.why == MoveReason::kFetch) ++stats.fetched;
    if (m.to == Tier::kDevice) forget_failures(m.unit);
    settle_dependents(d.job.ticket, true, Status());
    return Status();
  }

  // The synchronous mover's copies of every move begun since the last wave, batched: the arena's
  // writes to each store in one submission, then its reads from each store in another, so a file
  // store keeps its queue full instead of one block in flight. No two moves of a wave touch the
  // same slot (a move into a slot another vacates waits for the next wave); store-to-store moves go
  // one at a time through the staging buffer. A device arena's units go through its staging
  // buffers, a chunk of them at a time.
  void run_wave() {
    if (wave.empty()) return;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<Job> jobs;
    jobs.swap(wave);
    std::vector<Status> results(jobs.size());
    for (IoOp op : {IoOp::kWrite, IoOp::kRead})
      for (Tier t : {Tier::kHost, Tier::kDisk}) {
        std::vector<size_t> batch;
        for (size_t i = 0; i < jobs.size(); ++i) {
          const Move& m = jobs[i].move;
          const bool arena_write = op == IoOp::kWrite && m.from == Tier::kDevice && m.to == t;
          const bool arena_read = op == IoOp::kRead && m.to == Tier::kDevice && m.from == t;
          if (jobs[i].carry && (arena_write || arena_read)) batch.push_back(i);
        }
        // Through staging (a device arena and the disk) a chunk at a time; in place otherwise.
        const bool direct = !staged() || store(t)->payload_address(0) != nullptr;
        const size_t chunk = direct ? batch.size() : arena->staging_units();
        for (size_t at = 0; at < batch.size(); at += chunk)
          move_chunk(op, t, jobs, &batch[at], std::min(chunk, batch.size() - at), results);
      }
    bool fenced = false;  // an asynchronous arena's uploads may still read the host store
    for (size_t i = 0; i < jobs.size(); ++i) {
      const Move& m = jobs[i].move;
      if (jobs[i].carry && m.from != Tier::kDevice && m.to != Tier::kDevice) {
        if (m.to == Tier::kHost && !fenced) {
          results[i] = arena->fence();
          fenced = true;
        }
        if (results[i].ok()) results[i] = copy(jobs[i]);
      }
      inline_done.push_back(Done{std::move(jobs[i]), std::move(results[i])});
    }
    const double ms = ms_since(t0);
    stats.busy_ms += ms;
    stats.stall_ms += ms;
  }

  // Moves between the arena and store t for jobs[picked[0..n)] (arena writes for kWrite, arena
  // reads for kRead); each job's status into results. A host arena's units are read and written
  // by the store in place. A device arena copies itself to and from a store's slots in pinned
  // host memory (the header checked before, sealed after), and through staging for the disk.
  void move_chunk(IoOp op, Tier t, const std::vector<Job>& jobs, const size_t* picked, size_t n,
                  std::vector<Status>& results) {
    std::vector<int32_t> arena_slots(n);
    for (size_t k = 0; k < n; ++k) {
      const Move& m = jobs[picked[k]].move;
      arena_slots[k] = op == IoOp::kRead ? m.to_slot : m.from_slot;
    }
    if (staged() && store(t)->payload_address(0) != nullptr) {
      move_in_place(op, t, jobs, picked, n, arena_slots, results);
      return;
    }
    const bool staging = staged();
    std::vector<unsigned char*> host(n);
    for (size_t k = 0; k < n; ++k) host[k] = staging ? arena->staging(k) : nullptr;
    if (staging && op == IoOp::kWrite) {
      const Status st = arena->download(arena_slots.data(), host.data(), n);
      if (!st.ok()) {
        for (size_t k = 0; k < n; ++k) results[picked[k]] = st;
        return;
      }
    }
    std::vector<IoRequest> run(n);
    for (size_t k = 0; k < n; ++k) {
      const Job& job = jobs[picked[k]];
      IoRequest& r = run[k];
      r.op = op;
      r.tag = tag_of(job.move.unit);
      r.check_tag = op == IoOp::kRead;
      r.slot = op == IoOp::kRead ? job.move.from_slot : job.move.to_slot;
      r.buffer = staging ? arena->staging(k) : arena_unit(arena_slots[k]);
      r.version = job.version;
    }
    (void)store(t)->submit(run.data(), run.size());  // each request carries its status
    (void)store(t)->wait();
    for (size_t k = 0; k < n; ++k) results[picked[k]] = run[k].status;
    if (staging && op == IoOp::kRead) {
      for (size_t k = 0; k < n; ++k)
        if (!run[k].status.ok()) arena_slots[k] = -1;  // upload() skips it
      Status st = arena->upload(arena_slots.data(), host.data(), n);
      if (st.ok()) st = arena->fence();  // the staging is refilled next
      if (!st.ok())
        for (size_t k = 0; k < n; ++k)
          if (results[picked[k]].ok()) results[picked[k]] = st;
    }
  }

  // A device arena and a store its device copies in place (the host store in pinned memory).
  void move_in_place(IoOp op, Tier t, const std::vector<Job>& jobs, const size_t* picked, size_t n,
                     std::vector<int32_t>& arena_slots, std::vector<Status>& results) {
    BlockStore& s = *store(t);
    std::vector<unsigned char*> host(n);
    for (size_t k = 0; k < n; ++k) {
      const Move& m = jobs[picked[k]].move;
      const int64_t slot = op == IoOp::kRead ? m.from_slot : m.to_slot;
      host[k] = s.payload_address(slot);
      if (op == IoOp::kRead) {
        results[picked[k]] = s.check_header(slot, tag_of(m.unit));
        if (!results[picked[k]].ok()) arena_slots[k] = -1;  // not copied
      }
    }
    const Status st = op == IoOp::kRead ? arena->upload(arena_slots.data(), host.data(), n)
                                        : arena->download(arena_slots.data(), host.data(), n);
    for (size_t k = 0; k < n; ++k) {
      Status& r = results[picked[k]];
      if (!st.ok() && arena_slots[k] >= 0) r = st;
      if (op == IoOp::kWrite && r.ok()) {
        const Job& job = jobs[picked[k]];
        r = s.seal(job.move.to_slot, tag_of(job.move.unit), job.version);
      }
    }
  }

  // Applies every finished copy; with block, first waits for one when moves are in flight.
  Status drain(bool block) {
    std::vector<Done> ready;
    for (;;) {
      ready.clear();
      run_wave();
      ready.swap(inline_done);
      if (config.async_mover) {
        std::unique_lock<std::mutex> lock(mu);
        if (block && ready.empty() && done.empty() && outstanding > 0) {
          const auto t0 = std::chrono::steady_clock::now();
          done_cv.wait(lock, [&] { return !done.empty(); });
          stats.stall_ms += ms_since(t0);
        }
        for (Done& d : done) ready.push_back(std::move(d));
        done.clear();
        stats.busy_ms = worker_busy_ms;
      }
      if (ready.empty()) return Status();
      block = false;
      for (Done& d : ready) QWEN3VL_RETURN_IF_ERROR(complete(d));
    }
  }

  Status wait_idle() {
    while (outstanding > 0) QWEN3VL_RETURN_IF_ERROR(drain(true));
    if (!deferred.empty())
      return make_error(StatusCode::kInternal, deferred.size(),
                        " moves wait for evictions that are not in flight");
    return Status();
  }

  // Begins the plan's moves in order; one whose destination an earlier move vacates waits for it.
  void start_plan(const MovePlan& plan) {
    const uint64_t base = next_ticket;
    next_ticket += plan.moves.size();
    // The waiting ones first: a move the table refuses drops those that wait for it.
    for (size_t k = 0; k < plan.moves.size(); ++k) {
      const Move& m = plan.moves[k];
      if (m.after >= 0)
        deferred.push_back(Deferred{base + k, base + static_cast<uint64_t>(m.after), m});
    }
    for (size_t k = 0; k < plan.moves.size(); ++k)
      if (plan.moves[k].after < 0) start(plan.moves[k], base + k);
  }

  // The first failed read of one of `blocks` of `layer` not yet reported, reported once.
  Status report_failure(int32_t layer, const std::vector<int32_t>& blocks) {
    for (int32_t id : blocks) {
      const UnitId u{layer, id};
      for (const Failure& f : failures)
        if (f.unit == u) {
          Status st = f.status;
          forget_failures(u);
          return st;
        }
    }
    return Status();
  }

  bool busy_with(UnitId u) const {
    if (residency.state(u)->in_flight) return true;
    for (const Deferred& d : deferred)
      if (d.move.unit == u) return true;
    return false;
  }

  // The blocks sequence b reads (or writes up to) at the table's visible lengths, deduplicated.
  std::vector<int32_t> visible_blocks(const KvPageTable& t) const {
    std::vector<int32_t> blocks;
    const std::vector<int32_t>& lens = t.visible_lengths();
    const std::vector<int32_t>& bt = t.block_table();
    for (int64_t b = 0; b < table.batch; ++b) {
      const int64_t n = (lens[static_cast<size_t>(b)] + table.block_size - 1) / table.block_size;
      for (int64_t j = 0; j < n; ++j)
        blocks.push_back(bt[static_cast<size_t>(b * table.max_blocks + j)]);
    }
    std::sort(blocks.begin(), blocks.end());
    blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
    return blocks;
  }

  // Makes `blocks` of `layer` resident in the arena (fetching what is not), prefetching the next
  // `prefetch` layers' same blocks as room allows; each entry-0 unit already there is a hit.
  // Returns once entry 0's units have arrived; the prefetches may still be in flight.
  Status make_resident(int32_t layer, const std::vector<int32_t>& blocks, int32_t prefetch) {
    QWEN3VL_RETURN_IF_ERROR(drain(false));
    QWEN3VL_RETURN_IF_ERROR(report_failure(layer, blocks));  // an earlier prefetch's
    // Every block already there: with the synchronous mover a plan could only prefetch, which it
    // would copy on this thread anyway; skipping it keeps an all-resident step at the cost of a
    // scan of this layer's blocks instead of one over every unit.
    if (!config.async_mover && !arena->asynchronous()) {
      bool all = true;
      for (int32_t id : blocks) {
        const UnitState* s = residency.state(UnitId{layer, id});
        all = all && s->tier == Tier::kDevice && !s->in_flight;
      }
      if (all) {
        stats.hits += static_cast<int64_t>(blocks.size());
        return Status();
      }
    }
    AccessPlan access;
    access.entries.push_back(AccessEntry{layer, blocks});
    // Later layers, to this layer again in the next step: the blocks they hold already (this
    // step's new blocks are admitted by their layer's apply()). The first `prefetch` entries are
    // prefetched; all of them give the schedule-driven policy its next uses, so that on the cyclic
    // schedule of decode the arena keeps a fixed share of the units instead of evicting each one
    // just before its next use, as LRU does.
    const int32_t horizon = config.policy == EvictionPolicy::kScheduleDriven
                                ? config.layers
                                : std::min(prefetch, config.layers - 1);
    for (int32_t k = 1; k <= horizon; ++k) {
      AccessEntry e{(layer + k) % config.layers, {}};
      for (int32_t id : blocks)
        if (residency.state(UnitId{e.layer, id})->live) e.blocks.push_back(id);
      access.entries.push_back(std::move(e));
    }
    access.prefetch_entries = prefetch;
    // The synchronous mover copies prefetches on the decode thread: evicting a unit the cycle
    // reads again to prefetch another only adds transfers there. A worker thread, or an arena
    // whose copies run beside the kernels, overlaps them.
    access.prefetch_evicts_scheduled = config.async_mover || arena->asynchronous();
    for (int32_t id : blocks) {
      const UnitState* s = residency.state(UnitId{layer, id});
      if (s->tier == Tier::kDevice && !s->in_flight) ++stats.hits;
    }
    // A unit entry 0 waits for may be on its way out (an eviction in flight): plan again once it
    // has landed. Three rounds suffice; more is a bug.
    for (int round = 0; round < 4; ++round) {
      MovePlan plan;
      Status planned = residency.plan(access, &plan);
      if (planned.code() == StatusCode::kOutOfMemory && (outstanding > 0 || !deferred.empty())) {
        // Units in flight hold their slots and cannot be evicted: let them land, then plan again.
        QWEN3VL_RETURN_IF_ERROR(wait_idle());
        planned = residency.plan(access, &plan);
      }
      QWEN3VL_RETURN_IF_ERROR(planned);
      start_plan(plan);
      QWEN3VL_RETURN_IF_ERROR(drain(false));
      for (;;) {
        bool pending = false;
        for (int32_t id : blocks) pending = pending || busy_with(UnitId{layer, id});
        if (!pending) break;
        if (outstanding == 0)
          return make_error(StatusCode::kInternal, "layer ", layer,
                            ": waiting for moves that are not in flight");
        QWEN3VL_RETURN_IF_ERROR(drain(true));
      }
      QWEN3VL_RETURN_IF_ERROR(report_failure(layer, blocks));
      bool all = true;
      for (int32_t id : blocks)
        all = all && residency.state(UnitId{layer, id})->tier == Tier::kDevice;
      if (all) return Status();
    }
    return make_error(StatusCode::kInternal, "layer ", layer,
                      ": blocks not resident after four plans");
  }

  Status pin_all(int32_t layer, const std::vector<int32_t>& blocks, std::vector<UnitId>* pins) {
    for (int32_t id : blocks) {
      const UnitId u{layer, id};
      Status st = residency.pin(u);
      if (!st.ok()) {
        unpin_all(pins);
        return st;
      }
      pins->push_back(u);
    }
    return Status();
  }
  void unpin_all(std::vector<UnitId>* pins) {
    for (const UnitId& u : *pins) (void)residency.unpin(u);
    pins->clear();
  }
};

namespace {

Status check_config(const KvPageTable& table, const TieredKvConfig& c) {
  if (!table.created())
    return make_error(StatusCode::kInvalidArgument, "table: not created (KvPageTable::create)");
  const KvTableConfig& t = table.config();
  if (t.layout != KvLayout::kPaged)
    return make_error(StatusCode::kUnsupported, "table layout = ", to_string(t.layout),
                      ": the tiered store keeps paged tables only");
  if (c.layers < 1)
    return make_error(StatusCode::kInvalidArgument, "config.layers = ", c.layers, ": must be >= 1");
  if (c.kv_heads < 1 || c.head_dim < 1)
    return make_error(StatusCode::kInvalidArgument, "config.kv_heads, head_dim = ", c.kv_heads,
                      ", ", c.head_dim, ": must be >= 1");
  if (!is_floating(c.dtype))
    return make_error(StatusCode::kInvalidArgument, "config.dtype = ", to_string(c.dtype),
                      ": allowed f32, f16, bf16");
  if (c.arena_blocks < 1 || c.arena_blocks > INT32_MAX)
    return make_error(StatusCode::kInvalidArgument, "config.arena_blocks = ", c.arena_blocks,
                      ": allowed 1..", INT32_MAX);
  if (c.host_blocks < 0 || c.host_blocks > INT32_MAX || c.disk_blocks < 0 ||
      c.disk_blocks > INT32_MAX)
    return make_error(StatusCode::kInvalidArgument,
                      "config.host_blocks, disk_blocks = ", c.host_blocks, ", ", c.disk_blocks,
                      ": allowed 0..", INT32_MAX);
  if (c.disk_blocks > 0 && c.disk_path.empty())
    return make_error(StatusCode::kInvalidArgument,
                      "config.disk_path = \"\" with disk_blocks = ", c.disk_blocks,
                      ": name the slot file");
  if (c.prefetch_layers < 0)
    return make_error(StatusCode::kInvalidArgument, "config.prefetch_layers = ", c.prefetch_layers,
                      ": must be >= 0");
  return Status();
}

}  // namespace

Status TieredKvStore::create(const KvPageTable& table, const TieredKvConfig& given,
                             std::unique_ptr<TieredKvStore>* out, std::unique_ptr<Arena> arena) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null");
  TieredKvConfig config = given;
  if (arena != nullptr && config.arena_blocks == 0) config.arena_blocks = arena->shape().units;
  QWEN3VL_RETURN_IF_ERROR(check_config(table, config));
  auto m = std::make_unique<Impl>();
  m->table = table.config();
  const KvTableConfig& t = m->table;
  ArenaShape shape;
  shape.units = config.arena_blocks;
  shape.block_size = t.block_size;
  shape.kv_heads = config.kv_heads;
  shape.head_dim = config.head_dim;
  shape.dtype = config.dtype;
  shape.layers = config.layers;
  shape.batch = t.batch;
  shape.max_blocks = t.max_blocks;
  if (arena == nullptr) {
    QWEN3VL_RETURN_IF_ERROR(create_host_arena(shape, &arena));
  } else {
    const ArenaShape& a = arena->shape();
    if (a.units != shape.units || a.block_size != shape.block_size ||
        a.kv_heads != shape.kv_heads || a.head_dim != shape.head_dim || a.dtype != shape.dtype ||
        a.layers != shape.layers || a.batch != shape.batch || a.max_blocks != shape.max_blocks)
      return make_error(StatusCode::kInvalidArgument, "arena: ", a.units, " units of ",
                        a.block_size, " x ", a.kv_heads, " x ", a.head_dim, " ", to_string(a.dtype),
                        " for ", a.layers, " layers, batch ", a.batch, ", max_blocks ",
                        a.max_blocks, ": the table and config need ", shape.units, " units of ",
                        shape.block_size, " x ", shape.kv_heads, " x ", shape.head_dim, " ",
                        to_string(shape.dtype), " for ", shape.layers, " layers, batch ",
                        shape.batch, ", max_blocks ", shape.max_blocks);
    if (config.async_mover && arena->host_address(0) == nullptr)
      return make_error(StatusCode::kUnsupported,
                        "config.async_mover = true with a device arena: the asynchronous mover "
                        "copies through host memory only; use the synchronous mover");
  }
  m->config = config;
  m->unit_bytes = shape.unit_bytes();
  m->block_elems = t.block_size * config.kv_heads * config.head_dim;
  m->arena = std::move(arena);
  if (config.host_blocks > 0)
    QWEN3VL_RETURN_IF_ERROR(
        HostStore::create(m->unit_bytes, config.host_blocks, &m->host, m->arena->host_allocator()));
  if (config.disk_blocks > 0)
    QWEN3VL_RETURN_IF_ERROR(FileStore::create(config.disk_path, m->unit_bytes, config.disk_blocks,
                                              config.disk, &m->disk));
  ResidencyConfig rc;
  rc.layers = config.layers;
  rc.blocks = static_cast<int32_t>(t.num_blocks);
  rc.capacity[static_cast<size_t>(Tier::kDevice)] = config.arena_blocks;
  rc.capacity[static_cast<size_t>(Tier::kHost)] = config.host_blocks;
  rc.capacity[static_cast<size_t>(Tier::kDisk)] = config.disk_blocks;
  rc.policy = config.policy;
  rc.keep_disk_copies = config.keep_disk_copies;
  // The arena is filled to the brim by prefetch; evictions happen when a layer needs room.
  rc.device_high = rc.device_low = 1.0;
  QWEN3VL_RETURN_IF_ERROR(ResidencyTable::create(rc, &m->residency));
  const size_t units = static_cast<size_t>(config.layers) * static_cast<size_t>(t.num_blocks);
  m->staging.resize(m->unit_bytes);
  m->allocated.assign(static_cast<size_t>(t.num_blocks), false);
  m->written.assign(units, false);
  m->versions.assign(units, 0);
  m->pinned.resize(static_cast<size_t>(config.layers));
  m->stats.layer_stall_ms.assign(static_cast<size_t>(config.layers), 0.0);
  if (m->disk) m->disk_description = m->disk->describe();
  // From here on only the worker touches the stores (thread start orders their creation first).
  if (config.async_mover) m->worker = std::thread([impl = m.get()] { impl->worker_loop(); });
  out->reset(new TieredKvStore(std::move(m)));
  return Status();
}

TieredKvStore::TieredKvStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TieredKvStore::~TieredKvStore() = default;

Status TieredKvStore::sync(const KvPageTable& table) {
  Impl& m = *impl_;
  QWEN3VL_RETURN_IF_ERROR(m.check_table(table, "sync"));
  QWEN3VL_RETURN_IF_ERROR(m.drain(false));
  const BlockAllocator& a = table.allocator();
  for (int32_t id = 0; id < static_cast<int32_t>(m.allocated.size()); ++id) {
    const bool now = a.ref_count(id) > 0;
    if (m.allocated[static_cast<size_t>(id)] && !now)
      for (int32_t l = 0; l < m.config.layers; ++l) {
        const UnitId u{l, id};
        while (m.busy_with(u)) {  // a prefetch or eviction of it still under way
          if (m.outstanding == 0)
            return make_error(StatusCode::kInternal, "sync: unit ", u,
                              " waits for a move that is not in flight");
          QWEN3VL_RETURN_IF_ERROR(m.drain(true));
        }
        if (m.residency.state(u)->live) QWEN3VL_RETURN_IF_ERROR(m.residency.release(u));
        m.written[m.index(u)] = false;
        m.forget_failures(u);
      }
    m.allocated[static_cast<size_t>(id)] = now;
  }
  return Status();
}

Status TieredKvStore::apply(const KvPageTable& table, int32_t layer, const TensorView& k,
                            const TensorView& v) {
  Impl& m = *impl_;
  if (layer < 0 || layer >= m.config.layers)
    return make_error(StatusCode::kInvalidArgument, "layer = ", layer, ": allowed 0..",
                      m.config.layers - 1);
  if (!table.step_open())
    return make_error(StatusCode::kInvalidArgument,
                      "apply: the table has no open append step (begin_append first)");
  QWEN3VL_RETURN_IF_ERROR(m.check_table(table, "apply"));
  const KvAppendStep& s = table.step();
  QWEN3VL_RETURN_IF_ERROR(
      detail::check_kv_source(k, v, s,
                              {m.table.batch, m.config.kv_heads, m.config.head_dim,
                               m.arena->k().device, m.arena->k().device_index}));
  // The blocks this layer's share of the step touches: copy sources and destinations, writes.
  std::vector<int32_t> blocks;
  for (const KvRun& r : s.copies) {
    blocks.push_back(static_cast<int32_t>(r.src_major));
    blocks.push_back(static_cast<int32_t>(r.dst_major));
  }
  for (const KvRun& r : s.writes) blocks.push_back(static_cast<int32_t>(r.dst_major));
  std::sort(blocks.begin(), blocks.end());
  blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  for (int32_t id : blocks) {
    const UnitId u{layer, id};
    if (!m.residency.state(u)->live) QWEN3VL_RETURN_IF_ERROR(m.residency.admit(u));
  }
  QWEN3VL_RETURN_IF_ERROR(m.make_resident(layer, blocks, 0));
  std::vector<UnitId> pins;
  QWEN3VL_RETURN_IF_ERROR(m.pin_all(layer, blocks, &pins));
  // The blocks written here change: their disk copies are stale.
  for (const KvRun& r : s.copies)
    QWEN3VL_RETURN_IF_ERROR(
        m.residency.mark_dirty(UnitId{layer, static_cast<int32_t>(r.dst_major)}));
  for (const KvRun& r : s.writes)
    QWEN3VL_RETURN_IF_ERROR(
        m.residency.mark_dirty(UnitId{layer, static_cast<int32_t>(r.dst_major)}));
  // The runs with block ids replaced by arena slots (runs never cross a block).
  const auto slot_of = [&](int64_t id) {
    return static_cast<int64_t>(m.residency.state(UnitId{layer, static_cast<int32_t>(id)})->slot);
  };
  std::vector<KvRun> copies = s.copies, writes = s.writes;
  for (KvRun& r : copies) {
    r.src_major = slot_of(r.src_major);
    r.dst_major = slot_of(r.dst_major);
  }
  for (KvRun& r : writes) r.dst_major = slot_of(r.dst_major);
  std::vector<int32_t> used;  // the writes wait for the uploads that filled these slots
  for (int32_t id : blocks) used.push_back(static_cast<int32_t>(slot_of(id)));
  Status ready = m.arena->before_use(used.data(), used.size());
  if (!ready.ok()) {
    m.unpin_all(&pins);
    return ready;
  }
  // Sources as KvLayerStorage::apply takes them: [batch, rows, Hkv, D] or ragged [rows, Hkv, D].
  const TensorView sk = detail::kv_source_rows(k), sv = detail::kv_source_rows(v);
  const KvStorageOps& ops = m.arena->storage_ops();
  const TensorView &ak = m.arena->k(), &av = m.arena->v();
  Status st = ops.write(ak, av, ak, av, copies.data(), static_cast<int64_t>(copies.size()),
                        m.arena->stream());
  if (st.ok())
    st = ops.write(ak, av, sk, sv, writes.data(), static_cast<int64_t>(writes.size()),
                   m.arena->stream());
  if (st.ok())
    for (int32_t id : blocks) m.written[m.index(UnitId{layer, id})] = true;
  m.unpin_all(&pins);
  return st;
}

Status TieredKvStore::acquire(const KvPageTable& table, int32_t layer, KvCacheView* view) {
  Impl& m = *impl_;
  if (view == nullptr) return make_error(StatusCode::kNullPointer, "view = null");
  if (layer < 0 || layer >= m.config.layers)
    return make_error(StatusCode::kInvalidArgument, "layer = ", layer, ": allowed 0..",
                      m.config.layers - 1);
  QWEN3VL_RETURN_IF_ERROR(m.check_table(table, "acquire"));
  std::vector<UnitId>& pins = m.pinned[static_cast<size_t>(layer)];
  if (!pins.empty())
    return make_error(StatusCode::kInvalidArgument, "layer = ", layer,
                      ": already acquired (release it first)");
  const std::vector<int32_t> blocks = m.visible_blocks(table);
  for (int32_t id : blocks)
    if (!m.residency.state(UnitId{layer, id})->live)
      return make_error(StatusCode::kInvalidArgument, "layer ", layer, ", block ", id,
                        ": never written to this store (apply() every layer of every step)");
  const double stalled = m.stats.stall_ms;
  const Status resident = m.make_resident(layer, blocks, m.config.prefetch_layers);
  m.stats.layer_stall_ms[static_cast<size_t>(layer)] += m.stats.stall_ms - stalled;
  QWEN3VL_RETURN_IF_ERROR(resident);
  QWEN3VL_RETURN_IF_ERROR(m.pin_all(layer, blocks, &pins));
  const KvTableConfig& t = m.table;
  const std::vector<int32_t>& bt = table.block_table();
  m.slot_table.assign(bt.size(), -1);
  const std::vector<int32_t>& lens = table.visible_lengths();
  for (int64_t b = 0; b < t.batch; ++b) {
    const int64_t n = (lens[static_cast<size_t>(b)] + t.block_size - 1) / t.block_size;
    for (int64_t j = 0; j < n; ++j) {
      const size_t at = static_cast<size_t>(b * t.max_blocks + j);
      m.slot_table[at] = m.residency.state(UnitId{layer, bt[at]})->slot;
    }
  }
  KvCacheView v;
  v.layout = KvLayout::kPaged;
  v.k = m.arena->k();
  v.v = m.arena->v();
  // The decode queued next waits for the uploads that filled this layer's slots (and only those).
  Status published = m.arena->before_use(m.slot_table.data(), m.slot_table.size());
  if (published.ok())
    published =
        m.arena->publish(layer, lens.data(), m.slot_table.data(), &v.seq_lens, &v.block_table);
  if (!published.ok()) {
    m.unpin_all(&pins);
    return published;
  }
  v.max_seq_len = table.visible_max_length();
  *view = v;
  return Status();
}

Status TieredKvStore::release(int32_t layer) {
  Impl& m = *impl_;
  if (layer < 0 || layer >= m.config.layers)
    return make_error(StatusCode::kInvalidArgument, "layer = ", layer, ": allowed 0..",
                      m.config.layers - 1);
  m.unpin_all(&m.pinned[static_cast<size_t>(layer)]);
  return m.drain(false);
}

Status TieredKvStore::evict_all() {
  Impl& m = *impl_;
  QWEN3VL_RETURN_IF_ERROR(m.wait_idle());
  m.evict_error = Status();
  const Tier down[] = {Tier::kHost, Tier::kDisk};
  for (int32_t l = 0; l < m.config.layers; ++l)
    for (int32_t id = 0; id < static_cast<int32_t>(m.table.num_blocks); ++id) {
      const UnitId u{l, id};
      const UnitState* s = m.residency.state(u);
      if (!s->live || s->tier != Tier::kDevice || s->pins > 0 || s->in_flight) continue;
      bool moved = false;
      for (Tier t : down) {
        SlotPool const& pool = m.residency.slots(t);
        const bool into_copy = t == Tier::kDisk && s->disk_copy >= 0;
        if (pool.free_count() == 0 && !into_copy) continue;
        Move mv;
        mv.unit = u;
        mv.from = Tier::kDevice;
        mv.from_slot = s->slot;
        mv.to = t;
        mv.to_slot = into_copy ? s->disk_copy : pool.free_slots().back();
        mv.clean = into_copy;
        mv.why = MoveReason::kEvict;
        m.start(mv, m.next_ticket++);
        moved = true;
        break;
      }
      if (!moved)
        return make_error(StatusCode::kOutOfMemory, "evict_all: host and disk are full (",
                          m.config.host_blocks, " + ", m.config.disk_blocks, " blocks)");
    }
  QWEN3VL_RETURN_IF_ERROR(m.wait_idle());
  return m.evict_error;
}

Status TieredKvStore::wait_idle() { return impl_->wait_idle(); }

size_t TieredKvStore::unit_bytes() const { return impl_->unit_bytes; }
const TieredKvStats& TieredKvStore::stats() const {
  Impl& m = *impl_;
  if (m.config.async_mover) {
    std::lock_guard<std::mutex> lock(m.mu);
    m.stats.busy_ms = m.worker_busy_ms;
  }
  return m.stats;
}
const ResidencyTable& TieredKvStore::residency() const { return impl_->residency; }

std::string TieredKvStore::describe() const {
  const Impl& m = *impl_;
  return detail::concat(
      "tiered KV store: ", m.config.layers, " layers, blocks of ", m.unit_bytes, " bytes; arena ",
      m.config.arena_blocks, ", host ", m.config.host_blocks, ", disk ", m.config.disk_blocks,
      m.disk ? " (" + m.disk_description + ")" : std::string(), "; ", m.arena->describe(), "; ",
      m.config.policy == EvictionPolicy::kLru ? "LRU" : "schedule-driven", " eviction, prefetch ",
      m.config.prefetch_layers, " layers ahead, ",
      m.config.async_mover ? "asynchronous mover (a worker thread)"
                           : "synchronous mover (the calling thread)");
}

}  // namespace qwen3vl::lifecycle
