#include "cpu_backend.hpp"

namespace qwen3vl::detail {

Status CpuBackend::create(const CpuOptions& options, std::unique_ptr<CpuBackend>* out) {
  const CpuInfo& cpu = options.cpu_info ? *options.cpu_info : CpuInfo::current();
  if (options.num_threads < 0)
    return make_error(StatusCode::kInvalidArgument, "num_threads = ", options.num_threads,
                      ": must be >= 0 (0 = the machine's physical cores)");
  if (options.num_threads > kMaxCpuThreads)
    return make_error(StatusCode::kInvalidArgument, "num_threads = ", options.num_threads,
                      ": allowed 0 (the machine's physical cores) or 1..", kMaxCpuThreads);
  auto backend = std::make_unique<CpuBackend>();
  QWEN3VL_RETURN_IF_ERROR(resolve_cpu_isa(options.isa, cpu, &backend->isa_));
  // Physical cores by default: these kernels are FMA-bound and SMT siblings share the FMA units.
  backend->threads_ = options.num_threads > 0 ? options.num_threads : cpu.physical_cores;
  if (backend->threads_ < 1) backend->threads_ = 1;
  if (backend->threads_ > kMaxCpuThreads)
    backend->threads_ = kMaxCpuThreads;  // a hardware override
  backend->arena_ = std::make_unique<tbb::task_arena>(backend->threads_);
  *out = std::move(backend);
  return Status();
}

Status CpuBackend::check_workspace(Workspace ws, size_t slot_bytes) const {
  const size_t need = workspace_bytes(slot_bytes);
  if (slot_bytes == 0) return Status();
  if (ws.data == nullptr || ws.bytes < need)
    return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                      ws.data ? "" : " (data = null)", ": need ", need,
                      " (workspace_size() for these params)");
  return Status();
}

std::string CpuBackend::describe() const {
  return std::string("isa ") + to_string(isa_) + ", " + std::to_string(threads_) + " threads";
}

}  // namespace qwen3vl::detail
