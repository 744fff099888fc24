#!/usr/bin/env bash
# Runs the libFuzzer targets built in BUILD/fuzz/ (see the Makefile's fuzz and
# fuzz-smoke targets).
#   tests/fuzz/run.sh [--smoke] BUILD SECONDS TARGET...
# For each target: replays tests/fuzz/regressions/<target>/ and the seed
# corpus tests/fuzz/corpus/<target>/ (each input once), then fuzzes for
# SECONDS starting from the seeds plus what earlier runs found (kept in
# BUILD/corpus/<target>; the repository's corpus is never written). A crash
# is saved under BUILD/artifacts/<target>/; copy it into
# tests/fuzz/regressions/<target>/ once fixed. One line per target is
# appended to BUILD/fuzz-summary.tsv: date, target, seconds run, executions,
# corpus size, result.
set -uo pipefail
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
build=$1 seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
status=0
for t in "$@"; do
  bin=$build/fuzz/$t
  work=$build/corpus/$t
  art=$build/artifacts/$t
  mkdir -p "$work" "$art"
  opts=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art/")
  [ -f "$here/$t.dict" ] && opts+=(-dict="$here/$t.dict")
  case $t in
    config) opts+=(-max_len=16384) ;;
    webhook_results) opts+=(-max_len=8192) ;;
    *) opts+=(-max_len=4096) ;;
  esac
  # Each saved input once: a fixed bug must stay fixed.
  mapfile -t saved < <(find "$here/regressions/$t" "$here/corpus/$t" -type f 2>/dev/null | sort)
  if [ ${#saved[@]} -gt 0 ]; then
    if ! "$bin" "${opts[@]}" "${saved[@]}" >"$build/$t.replay.log" 2>&1; then
      echo "FAIL $t: a saved input fails; see $build/$t.replay.log" >&2
      tail -30 "$build/$t.replay.log" >&2
      status=1
      continue
    fi
  fi
  log=$build/$t.log
  start=$(date +%s)
  "$bin" "${opts[@]}" -max_total_time="$seconds" "$work" "$here/corpus/$t" >"$log" 2>&1
  rc=$?
  elapsed=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(find "$work" -type f | wc -l)
  result=ok
  if [ $rc -ne 0 ]; then
    result=FAIL
    status=1
    echo "FAIL $t (exit $rc): see $log; the input is in $art/" >&2
    grep -E 'ERROR|property broken|SUMMARY|Test unit written' "$log" | head -20 >&2
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$elapsed" "${execs:-?}" \
    "$corpus" "$result" >>"$build/fuzz-summary.tsv"
  printf 'fuzz %-16s %4ss %10s execs  %5s corpus  %s (%d saved inputs replayed)\n' "$t" \
    "$elapsed" "${execs:-?}" "$corpus" "$result" "${#saved[@]}"
done
exit $status
