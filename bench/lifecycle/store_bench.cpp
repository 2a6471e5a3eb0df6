// qwen3vl-attn-bench store: the disk tier's FileStore read and write throughput over a sweep of
// slot sizes and queue depths, beside fio on the same file with the same request size, queue
// depth, engine and O_DIRECT (when fio is on PATH). The sweep is what FileStoreOptions'
// defaults and the tiered store's block geometry are chosen from.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/routines.hpp"
#include "common/timing.hpp"
#include "qwen3vl/lifecycle/block_store.hpp"

namespace qwen3vl::bench {
namespace {

using lifecycle::FileStore;
using lifecycle::IoOp;
using lifecycle::IoRequest;

constexpr double kMiB = 1024.0 * 1024.0;

// Every slot once, all submitted together (the engine keeps queue_depth in flight), `reps` times;
// MiB/s of payload over all passes (as fio's --loops reports).
double store_mib_s(FileStore& store, IoOp op, std::vector<unsigned char>& buffers, int reps) {
  const int64_t n = store.slots();
  const size_t bytes = store.block_bytes();
  std::vector<IoRequest> requests(static_cast<size_t>(n));
  double total_ms = 0;
  for (int r = 0; r < reps; ++r) {
    for (int64_t i = 0; i < n; ++i) {
      IoRequest& q = requests[static_cast<size_t>(i)];
      q = IoRequest{};
      q.op = op;
      q.slot = i;
      q.buffer = buffers.data() + static_cast<size_t>(i) * bytes;
      q.tag = static_cast<uint64_t>(i);
      q.check_tag = op == IoOp::kRead;
      q.version = 1;
    }
    total_ms += wall_ms([&] {
      throw_if_error(store.submit(requests.data(), requests.size()));
      throw_if_error(store.wait());
    });
  }
  return static_cast<double>(reps) * static_cast<double>(n) * static_cast<double>(bytes) / kMiB /
         (total_ms / 1e3);
}

// fio's bandwidth (MiB/s) for one job over [offset, offset + size) of path; 0 when fio failed.
double fio_mib_s(const std::string& path, bool write, size_t bs, int64_t qd, uint64_t offset,
                 uint64_t size, const std::string& engine, int64_t loops) {
  const std::string cmd = "fio --name=store --filename=" + path +
                          " --rw=" + (write ? "write" : "read") + " --bs=" + std::to_string(bs) +
                          " --iodepth=" + std::to_string(qd) + " --direct=1 --ioengine=" + engine +
                          " --offset=" + std::to_string(offset) +
                          " --size=" + std::to_string(size) + " --loops=" + std::to_string(loops) +
                          " --output-format=json 2>/dev/null";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return 0;
  std::string out;
  char buf[4096];
  for (size_t got; (got = fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, got);
  if (pclose(pipe) != 0) return 0;
  const size_t section = out.find(write ? "\"write\" : {" : "\"read\" : {");
  if (section == std::string::npos) return 0;
  const size_t at = out.find("\"bw_bytes\" : ", section);
  if (at == std::string::npos) return 0;
  return std::strtod(out.c_str() + at + 13, nullptr) / kMiB;
}

}  // namespace

int store_routine(const std::vector<std::string>& args) {
  std::vector<int64_t> block_kib{64, 256, 1024}, depths{1, 4, 16, 32};
  int64_t file_mib = 512, reps = 3;
  std::string dir = "store-bench", engine = "auto";
  ArgParser parser("store",
                   R"(The disk tier (FileStore, one preallocated slot file with a checksummed
header per slot) written then read slot by slot at each --block-kib payload and --qd queue depth,
every slot of a --file-mib file submitted at once; beside fio on the same file, request size
(the slot stride), queue depth and engine, with O_DIRECT. Reports MiB/s of payload and
store / fio. The store also checksums every payload (CRC32C) and copies it through registered
staging buffers; fio does neither.)");
  parser.add_int_list("--block-kib", &block_kib, 4, 1 << 16, "slot payloads (KiB)");
  parser.add_int_list("--qd", &depths, 1, 4096, "queue depths");
  parser.add_int("--file-mib", &file_mib, 1, int64_t(1) << 22, "slot file size");
  parser.add_int("--reps", &reps, 1, 100, "passes (fio --loops the same)");
  parser.add_string("--dir", &dir, "DIR", "where the slot file goes");
  parser.add_choice("--engine", &engine, {"auto", "uring", "pool"},
                    "FileStore engine (auto: io_uring where it works)");
  return run_routine(parser, args, [&](Report& report) {
    std::filesystem::create_directories(dir);
    const std::string path = dir + "/store.slots";
    const bool have_fio = std::system("fio --version >/dev/null 2>&1") == 0;
    if (!have_fio) std::printf("# fio not on PATH: store figures only\n");
    std::printf("%10s %5s %11s %11s %11s %11s %8s %8s  %s\n", "block KiB", "qd", "write MiB/s",
                "fio write", "read MiB/s", "fio read", "w ratio", "r ratio", "engine");
    for (int64_t kib : block_kib)
      for (int64_t qd : depths) {
        lifecycle::FileStoreOptions o;
        o.engine = engine == "uring"  ? lifecycle::IoEngine::kIoUring
                   : engine == "pool" ? lifecycle::IoEngine::kThreadPool
                                      : lifecycle::IoEngine::kAuto;
        o.queue_depth = static_cast<int>(qd);
        o.threads = static_cast<int>(std::min<int64_t>(qd, 64));
        o.request_bytes = size_t{1} << 30;  // one request per slot, as fio's bs
        const size_t bytes = static_cast<size_t>(kib) * 1024;
        const int64_t slots = std::max<int64_t>(1, file_mib * 1024 / kib);
        std::unique_ptr<FileStore> store;
        throw_if_error(FileStore::create(path, bytes, slots, o, &store));
        std::vector<unsigned char> buffers(bytes * static_cast<size_t>(slots));
        for (size_t i = 0; i < buffers.size(); ++i)
          buffers[i] = static_cast<unsigned char>(i * 131);
        const int r = static_cast<int>(reps);
        const double w = store_mib_s(*store, IoOp::kWrite, buffers, r);
        const double rd = store_mib_s(*store, IoOp::kRead, buffers, r);
        const std::string fio_engine =
            store->engine() == lifecycle::IoEngine::kIoUring ? "io_uring" : "psync";
        const size_t stride = store->slot_stride();
        const uint64_t offset = store->slot_offset(0), size = stride * static_cast<uint64_t>(slots);
        const std::string described = store->describe();
        store.reset();
        // fio's "psync" runs one request at a time: the pool's threads are its numjobs, which a
        // single-job comparison leaves out, so the pool is compared at qd 1 only.
        const bool comparable = have_fio && (fio_engine == "io_uring" || qd == 1);
        const double fr =
            comparable ? fio_mib_s(path, false, stride, qd, offset, size, fio_engine, reps) : 0;
        const double fw =
            comparable ? fio_mib_s(path, true, stride, qd, offset, size, fio_engine, reps) : 0;
        // fio moves whole strides, the store counts payload: compare per request.
        const double scale = static_cast<double>(bytes) / static_cast<double>(stride);
        const double wr = fw > 0 ? w / (fw * scale) : 0, rr = fr > 0 ? rd / (fr * scale) : 0;
        std::printf("%10lld %5lld %11.0f %11.0f %11.0f %11.0f %8.2f %8.2f  %s\n",
                    static_cast<long long>(kib), static_cast<long long>(qd), w, fw * scale, rd,
                    fr * scale, wr, rr, described.c_str());
        report.add({{"block_kib", kib},
                    {"qd", qd},
                    {"write_mib_s", w},
                    {"read_mib_s", rd},
                    {"fio_write_mib_s", fw * scale},
                    {"fio_read_mib_s", fr * scale},
                    {"write_ratio", wr},
                    {"read_ratio", rr},
                    {"store", described}});
      }
    std::filesystem::remove(path);
    return 0;
  });
}

}  // namespace qwen3vl::bench
