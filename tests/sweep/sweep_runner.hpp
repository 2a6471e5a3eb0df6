// The differential sweep's driver: a seeded generator, the loop over one family's cases (case i
// of a family has seed base + i, and that seed alone rebuilds the case), the replay of one case
// (QWEN3VL_SWEEP_SEED), the case count per build (full in Release, scaled down where NDEBUG is
// unset: the debug-asan workflow), and a note naming the running case if the process dies.
#pragma once

#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#include <sanitizer/common_interface_defs.h>
#define QWEN3VL_SWEEP_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#include <sanitizer/common_interface_defs.h>
#define QWEN3VL_SWEEP_SANITIZER 1
#endif
#endif

namespace qwen3vl::testing::sweep {

// splitmix64: every draw of a case comes from its seed, in a fixed order.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed * 0x2545F4914F6CDD1Dull + 0x1234567ull) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform integer in [lo, hi].
  int64_t range(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  double uniform(double lo = 0.0, double hi = 1.0) {
    return lo + (hi - lo) * static_cast<double>(next() >> 11) * 0x1.0p-53;
  }
  bool chance(double p) { return uniform() < p; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(range(0, static_cast<int64_t>(v.size()) - 1))];
  }

 private:
  uint64_t state_;
};

// Threads of a case's objects: 1..4 (the work splits differently with each).
inline int draw_threads(Rng& r) {
  return static_cast<int>(r.pick(std::vector<int64_t>{1, 2, 2, 3, 4}));
}

// What a crash handler prints: the case running when the process died (a fixed buffer, written
// with write(2) only, so the handler stays async-signal-safe).
inline char* crash_note() {
  static char note[512] = "";
  return note;
}

inline void print_crash_note() {
  const char* note = crash_note();
  if (note[0] == '\0') return;
  const char head[] = "\n[sweep] the process died while running: ";
  (void)!write(2, head, sizeof head - 1);
  (void)!write(2, note, std::strlen(note));
  (void)!write(2, "\n", 1);
}

inline void sweep_signal_handler(int sig) {
  print_crash_note();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

inline void install_crash_note() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, sweep_signal_handler);
#ifdef QWEN3VL_SWEEP_SANITIZER
  __sanitizer_set_death_callback(print_crash_note);  // sanitizer reports end in _exit, no signal
#endif
}

// A whole number read from environment variable `name` (decimal digits only), or nullopt with a
// test failure naming the variable and its value: a typo must not turn into a run of no cases.
inline std::optional<uint64_t> env_number(const char* name, const char* text) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(text, &end, 10);
  if (*text < '0' || *text > '9' || *end != '\0' || errno == ERANGE) {
    ADD_FAILURE() << name << " = '" << text << "': allowed a whole number (decimal digits)";
    return std::nullopt;
  }
  return static_cast<uint64_t>(n);
}

// Cases per family: `release` in an optimised build; where NDEBUG is unset (the Debug + ASan/UBSan
// workflow, about 20x slower per case) a twentieth, at least 10. QWEN3VL_SWEEP_CASES=n (n >= 1)
// overrides both; 0, a negative number or anything but digits fails the test (and runs no case).
inline int64_t case_count(int64_t release) {
  if (const char* env = std::getenv("QWEN3VL_SWEEP_CASES")) {
    const std::optional<uint64_t> n = env_number("QWEN3VL_SWEEP_CASES", env);
    if (!n) return 0;
    if (*n < 1 || *n > uint64_t{1} << 40) {
      ADD_FAILURE() << "QWEN3VL_SWEEP_CASES = " << *n << ": allowed 1.." << (uint64_t{1} << 40);
      return 0;
    }
    return static_cast<int64_t>(*n);
  }
#ifdef NDEBUG
  return release;
#else
  return release / 20 > 10 ? release / 20 : 10;
#endif
}

// QWEN3VL_SWEEP_SEED=n: run only the case of seed n (in whichever family tests run); false with a
// failure when it is not a number.
// QWEN3VL_SWEEP_OFFSET=k starts each family's seeds k further on (longer runs elsewhere).
inline bool replay_seed(uint64_t* seed, bool* bad) {
  const char* env = std::getenv("QWEN3VL_SWEEP_SEED");
  if (env == nullptr || *env == '\0') return false;
  const std::optional<uint64_t> n = env_number("QWEN3VL_SWEEP_SEED", env);
  if (!n) {
    *bad = true;
    return false;
  }
  *seed = *n;
  return true;
}

// Cases and kernel runs of every family this process ran (printed at exit).
struct Totals {
  int64_t cases = 0, runs = 0;
  static Totals& get() {
    static Totals t;
    return t;
  }
};

// One case's context: its seed, what it is, and the kernel runs it made (one per ISA and object).
struct Case {
  uint64_t seed = 0;
  std::string family, label;
  int64_t runs = 0;

  std::string replay() const {
    return "seed " + std::to_string(seed) + " (" + label +
           "); replay alone: QWEN3VL_SWEEP_SEED=" + std::to_string(seed) +
           " test_sweep --gtest_filter=*." + family;
  }
  void describe(const std::string& text) {
    label = text;
    std::snprintf(crash_note(), 512, "%s", replay().c_str());
  }
};

// Runs `body` on the family's cases (or on the replayed seed alone); `body` builds the case from
// case.seed, calls case.describe() before running any kernel, and checks with gtest assertions.
// An exception fails the case with its seed. After 10 failing cases the family stops.
inline void run_family(const std::string& family, uint64_t base_seed, int64_t release_cases,
                       const std::function<void(Case&)>& body) {
  install_crash_note();
  std::vector<uint64_t> seeds;
  uint64_t replay = 0;
  bool bad_env = false, defaults = false;
  if (replay_seed(&replay, &bad_env)) {
    seeds.push_back(replay);
  } else if (!bad_env) {
    const int64_t n = case_count(release_cases);
    defaults = std::getenv("QWEN3VL_SWEEP_CASES") == nullptr;
    const char* offset_env = std::getenv("QWEN3VL_SWEEP_OFFSET");  // soak runs: further seeds
    const std::optional<uint64_t> offset = offset_env && *offset_env
                                               ? env_number("QWEN3VL_SWEEP_OFFSET", offset_env)
                                               : std::optional<uint64_t>(0);
    if (offset)
      for (int64_t i = 0; i < n; ++i)
        seeds.push_back(base_seed + *offset + static_cast<uint64_t>(i));
  }
  int64_t runs = 0, failing = 0, ran = 0;
  for (uint64_t seed : seeds) {
    ++ran;
    Case c;
    c.seed = seed;
    c.family = family;
    const int before =
        ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
    try {
      SCOPED_TRACE(::testing::Message() << "[sweep " << family << "] seed " << seed);
      body(c);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "exception: " << e.what();
    }
    runs += c.runs;
    const auto* result = ::testing::UnitTest::GetInstance()->current_test_info()->result();
    bool failed = false;
    for (int i = before; i < result->total_part_count(); ++i)
      failed = failed || result->GetTestPartResult(i).failed();
    if (failed) {
      std::printf("[sweep] %s FAILED: %s\n", family.c_str(), c.replay().c_str());
      if (++failing == 10) {
        ADD_FAILURE() << "[sweep " << family << "] 10 failing cases: stopping this family";
        break;
      }
    }
  }
  crash_note()[0] = '\0';
  Totals::get().cases += ran;
  Totals::get().runs += runs;
  std::printf("[sweep] %s: %lld cases, %lld kernel runs (seeds %llu..%llu)\n", family.c_str(),
              static_cast<long long>(ran), static_cast<long long>(runs),
              static_cast<unsigned long long>(ran ? seeds.front() : 0),
              static_cast<unsigned long long>(ran ? seeds[static_cast<size_t>(ran - 1)] : 0));
  std::fflush(stdout);
  // A family that ran nothing checked nothing: a bad setting above, or (over the default cases;
  // one replayed seed may be a case another family's body skips) bodies that all skipped.
  EXPECT_GT(ran, 0) << "[sweep " << family << "] ran no case";
  if (defaults) EXPECT_GT(runs, 0) << "[sweep " << family << "] ran no kernel";
}

}  // namespace qwen3vl::testing::sweep
