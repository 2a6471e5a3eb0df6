// qwen3vl-attn-microbench: Google Benchmark over every (variant, device) in Selector::built() and
// the Qwen3-VL shapes (text prefill 1024/4096, causal and not; packed vision frames), with a FLOP
// rate counter (visible query-key pairs only), the sampled error against the float64 reference, and
// an sgemm anchor at the same thread count.
//
// Own flags (removed before Google Benchmark sees argv), each also read from the environment:
//   --threads=T   QWEN3VL_BENCH_THREADS  CPU threads (default: physical cores)
//   --dtype=D     QWEN3VL_BENCH_DTYPE    f32 | f16 | bf16 (default f32)
//   --isa=I       QWEN3VL_CPU_ISA        the library's own ISA override
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/accuracy.hpp"
#include "common/device_run.hpp"
#include "common/flops.hpp"
#include "common/workload.hpp"
#include "qwen3vl/selector/selector.hpp"

namespace qwen3vl::bench {
namespace {

struct MicroSettings {
  int threads = 0;
  DType dtype = DType::kF32;
  CpuIsa isa = CpuIsa::kAuto;
};

// Problems are built once per case: Google Benchmark calls a benchmark several times while it
// settles the iteration count, and building the 4096 problem takes longer than running it.
testing::Problem& cached_problem(const WorkloadCase& c) {
  static std::map<std::string, std::unique_ptr<testing::Problem>> cache;
  auto& slot = cache[c.label + "/" + to_string(c.spec.dtype)];
  if (!slot) slot = std::make_unique<testing::Problem>(c.spec);
  return *slot;
}

void attention_benchmark(benchmark::State& state, Variant variant, Device device,
                         const WorkloadCase& c, const MicroSettings& settings) {
  AttentionConfig config;
  config.variant = variant;
  config.device = device;
  config.num_heads = static_cast<int>(c.spec.heads);
  config.num_kv_heads = static_cast<int>(c.spec.kv_heads);
  config.head_dim = static_cast<int>(c.spec.head_dim);
  config.dtype = c.spec.dtype;
  config.mask = c.spec.mask;
  config.cpu.num_threads = settings.threads;
  config.cpu.isa = settings.isa;
  testing::Problem& problem = cached_problem(c);
  std::unique_ptr<Attention> attention;
  std::unique_ptr<DeviceRun> run;
  Workspace ws;
  Status status = Selector::try_create(config, 0, &attention);
  if (status.ok()) status = make_device_run(device, &problem, &run);
  if (status.ok()) status = attention->supports(run->params());
  const size_t workspace_bytes = status.ok() ? attention->workspace_size(run->params()) : 0;
  if (status.ok()) status = run->workspace(workspace_bytes, &ws);
  const auto call = [&] { return attention->forward(run->params(), ws, run->stream()); };
  std::vector<double> ms;
  if (status.ok()) status = run->time(call, 1, 0, &ms);  // warm-up: page faults, thread start
  if (!status.ok()) {
    state.SkipWithError(status.to_string().c_str());
    return;
  }
  for (auto _ : state) {
    status = run->time(call, 0, 1, &ms);
    if (!status.ok()) {
      state.SkipWithError(status.to_string().c_str());
      return;
    }
    state.SetIterationTime(ms[0] / 1e3);
  }
  if (!(status = run->fetch_output(&problem)).ok()) {
    state.SkipWithError(status.to_string().c_str());
    return;
  }
  // Shown as FLOP=<n>G/s: a rate over the manual (device) time.
  state.counters["FLOP"] = benchmark::Counter(attention_flops(problem.params),
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.counters["max_rel_err"] = sampled_max_relative_error(problem.params);
  state.counters["workspace_MiB"] = static_cast<double>(workspace_bytes) / (1 << 20);
  state.SetLabel(attention->describe());
}

void sgemm_benchmark(benchmark::State& state, int threads) {
  CpuSgemm gemm(state.range(0), threads);
  gemm.run();
  for (auto _ : state) gemm.run();
  state.counters["FLOP"] =
      benchmark::Counter(gemm.flops(), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(CpuSgemm::source());
}

// Takes --name=value out of argv, else the environment variable; empty when neither is set.
std::string take_flag(int* argc, char** argv, const std::string& name, const char* env) {
  std::string value;
  const std::string prefix = "--" + name + "=";
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind(prefix, 0) == 0)
      value = arg.substr(prefix.size());
    else
      argv[kept++] = argv[i];
  }
  *argc = kept;
  if (value.empty() && env)
    if (const char* e = std::getenv(env)) value = e;
  return value;
}

Status parse_settings(int* argc, char** argv, MicroSettings* s) {
  const std::string threads = take_flag(argc, argv, "threads", "QWEN3VL_BENCH_THREADS");
  const std::string dtype = take_flag(argc, argv, "dtype", "QWEN3VL_BENCH_DTYPE");
  const std::string isa = take_flag(argc, argv, "isa", nullptr);
  if (!threads.empty()) {
    char* end = nullptr;
    const long t = std::strtol(threads.c_str(), &end, 10);
    if (*end != '\0' || t < 1 || t > 1024)
      return make_error(StatusCode::kInvalidArgument, "threads = '", threads, "': allowed 1..1024");
    s->threads = static_cast<int>(t);
  }
  if (s->threads == 0) s->threads = CpuInfo::current().physical_cores;
  if (!dtype.empty()) {
    bool found = false;
    for (DType d : {DType::kF32, DType::kF16, DType::kBF16})
      if (dtype == to_string(d)) {
        s->dtype = d;
        found = true;
      }
    if (!found)
      return make_error(StatusCode::kInvalidArgument, "dtype = '", dtype,
                        "': allowed f32, f16, bf16");
  }
  if (!isa.empty()) QWEN3VL_RETURN_IF_ERROR(parse_cpu_isa(isa, &s->isa));
  return Status();
}

void register_benchmarks(const MicroSettings& settings) {
  const std::string threads = "/threads:" + std::to_string(settings.threads);
  benchmark::RegisterBenchmark(("sgemm" + threads).c_str(), sgemm_benchmark, settings.threads)
      ->Arg(2048)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  for (const auto& [variant, device] : Selector::built())
    for (const WorkloadCase& c : qwen3vl_micro_workload(settings.dtype)) {
      const std::string name = std::string("attention/") + to_string(variant) + "/" +
                               to_string(device) + "/" + to_string(settings.dtype) + "/" + c.label +
                               (device == Device::kCPU ? threads : "");
      benchmark::RegisterBenchmark(name.c_str(), attention_benchmark, variant, device, c, settings)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
}

}  // namespace
}  // namespace qwen3vl::bench

int main(int argc, char** argv) {
  qwen3vl::bench::MicroSettings settings;
  if (const qwen3vl::Status s = qwen3vl::bench::parse_settings(&argc, argv, &settings); !s.ok()) {
    std::cerr << "qwen3vl-attn-microbench: " << s.to_string() << "\n";
    return 2;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  qwen3vl::bench::register_benchmarks(settings);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
