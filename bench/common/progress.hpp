// Progress of a long benchmark run: "[prefill] case 3/12 flash2/cpu text_n4096" on stderr, drawn
// in place with \r while a case runs and erased before the routine prints the case's results, so
// the routine's own output reads as it would without it. Only when stderr is a terminal: logs and
// CI output get none of it. QWEN3VL_BENCH_PROGRESS=0 turns it off; =1 draws it into a pipe too.
#pragma once

#include <cstddef>
#include <string>

namespace qwen3vl::bench {

class Progress {
 public:
  // `total` cases of `routine`; 0 when not known (the line then says "case 3").
  Progress(std::string routine, size_t total);
  ~Progress();  // erases the line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // The next case begins: draws "[routine] case i/total what" over the previous line. Returns
  // whether a line is drawn (the routine may then print its own per-case text after erase()).
  bool start(const std::string& what);
  // Erases the line (no-op when none is drawn): call before printing.
  void erase();

  // Whether progress is drawn in this process (stderr a terminal, or the variable above).
  static bool enabled();

 private:
  std::string routine_;
  size_t total_ = 0, done_ = 0, drawn_ = 0;  // drawn_: width of the line on screen
};

}  // namespace qwen3vl::bench
