// qwen3vl-attn-bench prefill: every built (variant, device) on the Qwen3-VL workload (or one shape
// given by flags), timed, checked against the float64 reference on sampled rows, and quoted
// against the sgemm rate of the same device measured in the same run.
#include <algorithm>
#include <iostream>
#include <map>

#include "common/device_run.hpp"
#include "common/progress.hpp"
#include "common/routine.hpp"
#include "options.hpp"
#include "qwen3vl/hardware/hardware_info.hpp"
#include "report.hpp"
#include "run_case.hpp"

namespace qwen3vl::bench {
namespace {

int prefill_usage_error(const Status& status) { return usage_error("prefill", status); }

// The variants that compute exact dense attention: what --variant all runs. The others compute
// something else on purpose (a pattern, a routing, a kernel feature map); naming one runs it with
// the inputs it needs and checks it against its own oracle (variant_inputs.hpp).
bool computes_dense_attention(Variant v) {
  return v == Variant::kStandard || v == Variant::kFlash2 || v == Variant::kSm61Tiled;
}

bool contains(const std::vector<Device>& devices, Device d) {
  return std::find(devices.begin(), devices.end(), d) != devices.end();
}

// The (variant, device) pairs the flags ask for; a named pair that is not built is the selector's
// error, never a silent substitute.
Status resolve_targets(const CliOptions& o, std::vector<Target>* out) {
  const auto built = Selector::built();
  std::vector<Device> devices;
  if (o.device == "all") {
    // "all" means every device built *and present*: a CUDA build on a machine without a GPU
    // still benchmarks its CPU variants (--device cuda asks for the GPU and fails without one).
    const bool gpu_present = !HardwareInfo::current().gpus.empty();
    for (const auto& pair : built)
      if (!contains(devices, pair.second) && (pair.second != Device::kCUDA || gpu_present))
        devices.push_back(pair.second);
    if (!gpu_present && std::any_of(built.begin(), built.end(),
                                    [](const auto& p) { return p.second == Device::kCUDA; }))
      std::cerr << "qwen3vl-attn-bench: CUDA variants are built but no CUDA device is visible; "
                   "benchmarking the CPU only\n";
  } else {
    devices.push_back(o.device == "cuda" ? Device::kCUDA : Device::kCPU);
  }
  if (o.variant == "all") {
    for (const auto& [variant, device] : built)
      if (contains(devices, device) && computes_dense_attention(variant))
        out->push_back({variant, device});
    if (out->empty()) {
      std::string list;
      for (const auto& [variant, device] : built)
        list += (list.empty() ? "" : ", ") + std::string(to_string(variant)) + "(" +
                to_string(device) + ")";
      return make_error(StatusCode::kNotImplemented, "--device = ", o.device,
                        ": no variant is built for it (built: ", list, ")");
    }
    return Status();
  }
  Variant variant = Variant::kAuto;
  QWEN3VL_RETURN_IF_ERROR(parse_variant(o.variant, &variant));
  for (Device device : devices) {
    const bool is_built =
        std::find(built.begin(), built.end(), std::make_pair(variant, device)) != built.end();
    if (variant == Variant::kAuto || is_built) out->push_back({variant, device});
  }
  if (out->empty()) {  // let the selector name what is missing
    AttentionConfig config;
    config.variant = variant;
    config.device = o.device == "cuda" ? Device::kCUDA : Device::kCPU;
    std::unique_ptr<Attention> attention;
    QWEN3VL_RETURN_IF_ERROR(Selector::try_create(config, 0, &attention));
    out->push_back({variant, config.device});
  }
  return Status();
}

int run(const CliOptions& o, Report* report) {
  std::vector<Target> targets;
  if (Status s = resolve_targets(o, &targets); !s.ok()) return prefill_usage_error(s);
  RunSettings settings;
  settings.threads = o.threads > 0 ? o.threads : CpuInfo::current().physical_cores;
  settings.isa = o.isa;
  settings.repeats = o.repeats;
  settings.variant = o.variant_flags;
  const std::vector<WorkloadCase> cases =
      o.custom_shape() ? std::vector<WorkloadCase>{{"custom", custom_spec(o)}}
                       : qwen3vl_workload(o.dtype);

  // Every target must build (a bad --isa, a variant not built) before any time is spent.
  for (const Target& t : targets) {
    std::unique_ptr<Attention> attention;
    if (Status s = create_variant(make_config(t, cases[0].spec, settings), &attention); !s.ok())
      return prefill_usage_error(s);
  }

  ReportContext context;
  context.repeats = settings.repeats;
  context.sampled_rows = settings.sampled_rows;
  std::map<Device, SgemmRate> anchors;  // one sgemm rate per device, measured before any kernel
  for (const Target& t : targets) {
    if (anchors.count(t.device)) continue;
    std::cerr << "measuring sgemm on " << to_string(t.device) << " ...\n";
    SgemmRate rate;
    if (Status s = measure_sgemm(t.device, settings.threads, &rate); !s.ok()) {
      std::cerr << "qwen3vl-attn-bench prefill: sgemm on " << to_string(t.device) << ": "
                << s.to_string() << "\n";
      return 1;
    }
    anchors[t.device] = rate;
    report->context(std::string("sgemm_gflops_") + to_string(t.device), rate.gflops);
    report->context(std::string("sgemm_source_") + to_string(t.device), rate.source);
    context.sgemm.push_back({to_string(t.device), rate});
  }

  std::vector<CaseResult> results;
  int failures = 0;
  Progress progress("prefill", cases.size() * targets.size());
  for (const WorkloadCase& c : cases) {
    context.has_vision |= !c.spec.varlen_q.empty();
    testing::Problem problem(c.spec);
    for (const Target& t : targets) {
      const std::string name = std::string(to_string(t.variant)) + "/" + to_string(t.device) + " " +
                               c.label + " (" + shape_string(c.spec) + ", " +
                               to_string(c.spec.dtype) + ")";
      // The case's line names it before it runs; while the progress line shows it, after.
      const bool shown = progress.start(name);
      if (!shown) std::cerr << name << " ... " << std::flush;
      CaseResult r;
      const Status s = run_case(t, c, &problem, settings, anchors.at(t.device), &r);
      progress.erase();
      if (shown) std::cerr << name << " ... ";
      if (s.code() == StatusCode::kUnsupported) {
        std::cerr << "skipped: " << s.message() << "\n";
        continue;
      }
      if (!s.ok()) {
        std::cerr << "FAILED: " << s.to_string() << "\n";
        ++failures;
        continue;
      }
      std::cerr << r.ms << " ms, max rel err " << r.max_rel_err
                << (r.accurate ? "\n" : " ABOVE TOLERANCE\n");
      failures += r.accurate ? 0 : 1;
      results.push_back(r);
    }
  }

  add_rows(report, results);
  const CpuInfo& cpu = CpuInfo::current();
  std::cout << "machine: " << cpu.brand << ", " << cpu.physical_cores << " physical / "
            << cpu.logical_cores << " logical cores; kernels and sgemm on " << settings.threads
            << " threads\n\n";
  print_table(std::cout, results, context);
  return failures ? 1 : 0;
}

}  // namespace
}  // namespace qwen3vl::bench

namespace qwen3vl::bench {

int prefill_routine(const std::vector<std::string>& args) {
  CliOptions options;
  ArgParser parser("prefill", prefill_about());
  add_prefill_flags(&parser, &options);
  return run_routine(parser, args, [&](Report& report) {
    if (Status s = check_prefill_options(options); !s.ok()) return prefill_usage_error(s);
    return run(options, &report);
  });
}

}  // namespace qwen3vl::bench
