#include "progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace qwen3vl::bench {
namespace {

// A line longer than the terminal wraps, and \r then returns to its last row only.
size_t terminal_width() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1) return ws.ws_col - 1;
  return 79;
}

// Blanks the `width` columns drawn before, then draws `text`: spaces rather than an erase-line
// escape, right on any terminal (TERM=dumb included).
void overwrite(size_t width, const std::string& text) {
  std::cerr << '\r' << std::string(width, ' ') << '\r' << text << std::flush;
}

}  // namespace

bool Progress::enabled() {
  static const bool on = [] {
    const char* env = std::getenv("QWEN3VL_BENCH_PROGRESS");
    if (env && *env) return std::strcmp(env, "0") != 0;
    return isatty(STDERR_FILENO) == 1;
  }();
  return on;
}

Progress::Progress(std::string routine, size_t total)
    : routine_(std::move(routine)), total_(total) {}

Progress::~Progress() { erase(); }

bool Progress::start(const std::string& what) {
  ++done_;
  if (!enabled()) return false;
  // The routine's table on stdout may share the terminal: what it wrote goes out first.
  std::cout.flush();
  std::fflush(stdout);
  std::string text = "[" + routine_ + "] case " + std::to_string(done_) +
                     (total_ ? "/" + std::to_string(total_) : "") +
                     (what.empty() ? "" : " " + what);
  const size_t width = terminal_width();
  if (text.size() > width) text.resize(width);
  overwrite(drawn_, text);
  drawn_ = text.size();
  return true;
}

void Progress::erase() {
  if (drawn_ == 0) return;
  overwrite(drawn_, "");
  drawn_ = 0;
}

}  // namespace qwen3vl::bench
