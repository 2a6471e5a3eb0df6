#!/usr/bin/env bash
# ptxas's resource report of a CUDA build log (compiled with -Xptxas=-v), and the Pascal check.
# Usage: scripts/lib/ptxas_report.sh <build log> <source root> <build dir>
# Prints, per kernel and architecture, registers, shared memory (static from ptxas; dynamic for the
# flash tiles Tiles<C, D> of cuda/flash/flash_traits.cuh, whose size is a compile-time constant,
# over the head_dims of the build's generated flash_head_dims.hpp), stack and spill bytes. For every
# architecture below sm_70 it checks that no kernel spills and that static + dynamic shared memory
# stays within the 48 KB a block may use there; it exits 1 when one does not. Kernels whose dynamic
# size is chosen at run time are checked by their host code before launch, not here. Flash tiles
# above 48 KB compile to a trap before sm_70 (the host never launches them there) and are skipped.
# A flash kernel whose Tiles<C, D> has no known size fails the check (a head_dim list out of step).
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 <build log> <source root> <build dir>" >&2
  exit 2
fi
log=$1
root=$2
generated=$3/cuda/generated/flash  # flash_head_dims.hpp, from QWEN3VL_FLASH_HEAD_DIMS at configure
if [ ! -f "$generated/flash_head_dims.hpp" ]; then
  echo "qwen3vl: $generated/flash_head_dims.hpp is missing: configure $3 with CUDA first" >&2
  exit 2
fi
limit=$((48 * 1024))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== ptxas resource report (every kernel, per architecture) =="
if ! grep -q "^ptxas info *: Used" "$log"; then
  echo "(no kernels: the log holds no ptxas report)"
  exit 0
fi

# The flash tiles' dynamic shared memory: "<TileConfig> <D> <bytes>".
"${CXX:-c++}" -std=c++17 -I"$root/include" -I"$root/cuda" -I"$generated" \
  "$root/scripts/lib/flash_tile_smem.cpp" -o "$tmp/flash_tile_smem"
"$tmp/flash_tile_smem" >"$tmp/tiles"

# One record per (kernel, architecture): arch, registers, static smem, stack, spill stores, spill
# loads, mangled name (tab-separated).
awk 'BEGIN { OFS = "\t" }
     /Compiling entry function/ { split($0, q, "\047"); name = q[2]; arch = q[4];
                                  stack = st = ld = 0; next }
     /bytes stack frame/ { stack = $1; st = $5; ld = $9; next }
     /^ptxas info *: Used/ {
       regs = 0; smem = 0
       if (match($0, /Used [0-9]+ registers/)) { split(substr($0, RSTART, RLENGTH), w, " "); regs = w[2] }
       if (match($0, /[0-9]+ bytes smem/)) { split(substr($0, RSTART, RLENGTH), w, " "); smem = w[1] }
       print arch, regs, smem, stack, st, ld, name }' "$log" >"$tmp/records"
demangle=$(command -v cu++filt || command -v c++filt || echo cat)
$demangle <"$tmp/records" >"$tmp/named"

awk -F '\t' -v limit="$limit" '
  FNR == NR { split($0, t, " "); tile[t[1] " " t[2]] = t[3]; next }
  {
    arch = $1; name = $7; key = name SUBSEP arch
    if (!(name in seen)) { seen[name] = 1; order[++n] = name }
    if (!(key in regs) || $2 + 0 > regs[key]) regs[key] = $2
    if (!(key in smem) || $3 + 0 > smem[key]) smem[key] = $3
    if ($4 + 0 > stack[key]) stack[key] = $4
    if ($5 + $6 >= spills[key]) { spills[key] = $5 + $6; stores[key] = $5; loads[key] = $6 }
    if (!(arch in archs)) { archs[arch] = 1; arch_list[++na] = arch }
    # Flash tiles: Tiles<(...TileConfig)C, D> in the demangled name (some demanglers write D as
    # "(int)D"). A Tiles<> kernel of no known size is -2: a failure below.
    dyn[key] = -1
    if (match(name, /Tiles<\([A-Za-z0-9_:]*TileConfig\)[0-9]+, *(\(int\))?[0-9]+>/)) {
      s = substr(name, RSTART, RLENGTH - 1); sub(/^.*TileConfig\)/, "", s); sub(/\(int\)/, "", s)
      split(s, cd, /, */)
      dyn[key] = ((cd[1] " " cd[2]) in tile) ? tile[cd[1] " " cd[2]] : -2
    } else if (name ~ /Tiles</) {
      dyn[key] = -2
    }
  }
  END {
    failed = 0
    for (i = 1; i <= n; ++i) {
      name = order[i]; print name
      for (j = 1; j <= na; ++j) {
        arch = arch_list[j]; key = name SUBSEP arch
        if (!(key in regs)) continue
        old = arch ~ /^sm_[1-6][0-9]$/
        line = sprintf("    %s: %3d registers, smem %d B static", arch, regs[key], smem[key])
        total = smem[key]
        if (dyn[key] >= 0 && old && dyn[key] > limit) {
          line = line sprintf(" (tiles of %d B dynamic: a trap before sm_70, never launched)", dyn[key])
          total = smem[key]
        } else if (dyn[key] >= 0) {
          total = smem[key] + dyn[key]
          line = line sprintf(" + %d B dynamic = %d B", dyn[key], total)
        }
        line = line sprintf(", stack %d B, spill stores %d B, loads %d B", stack[key], stores[key],
                            loads[key])
        if (dyn[key] == -2) {
          line = line "  << FAIL: flash tiles of unknown dynamic size (not in flash_tile_smem)"
          ++failed; ++bad[arch]
        }
        if (old) {
          ++checked[arch]
          if (spills[key] > 0) { line = line "  << FAIL: spills"; ++failed; ++bad[arch] }
          if (total > limit) { line = line "  << FAIL: over 48 KB"; ++failed; ++bad[arch] }
          if (total > most[arch]) { most[arch] = total; most_name[arch] = name }
          if (spills[key] > most_spill[arch]) most_spill[arch] = spills[key]
        }
        print line
      }
    }
    print ""
    print "== check before sm_70: no spills, static + dynamic shared memory <= " limit " B per block =="
    for (j = 1; j <= na; ++j) {
      arch = arch_list[j]
      if (!(arch in checked)) continue
      printf "%s: %d kernels, largest spill (stores + loads) %d B, most shared memory %d B (%s): %s\n", arch,
             checked[arch], most_spill[arch] + 0, most[arch] + 0, most_name[arch],
             (arch in bad) ? "FAILED" : "ok"
    }
    exit failed > 0 ? 1 : 0
  }' "$tmp/tiles" "$tmp/named"
