#!/usr/bin/env bash
# kiln's benchmarks: bench/run.sh [SCENARIO...] (default: every bench/scenarios/*.sh).
#
# Builds the release binaries, installs missing peers (Debian packages, as root), runs each scenario
# and prints one table of kiln against its peers. Results: bench/out/ (hyperfine JSON and markdown
# per benchmark, summary.tsv and summary.md). Environment knobs: see bench/README.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  echo "usage: bench/run.sh [--list] [SCENARIO...]"
  echo "scenarios: $(cd "$BENCH_DIR/scenarios" && ls -- *.sh | sed 's/\.sh$//' | tr '\n' ' ')"
}

scenarios=()
for a in "$@"; do
  case $a in
    -h | --help) usage; exit 0 ;;
    --list) (cd "$BENCH_DIR/scenarios" && ls -- *.sh | sed 's/\.sh$//'); exit 0 ;;
    -*) usage >&2; exit 2 ;;
    *) [[ -f $BENCH_DIR/scenarios/$a.sh ]] || { echo "unknown scenario: $a" >&2; usage >&2; exit 2; }
       scenarios+=("$a") ;;
  esac
done
if ((${#scenarios[@]} == 0)); then
  mapfile -t scenarios < <(cd "$BENCH_DIR/scenarios" && ls -- *.sh | sed 's/\.sh$//')
fi

ensure_peers
build_release
: >"$SUMMARY"
started=$(date -u +%Y-%m-%dT%H:%MZ)
failed=()
for s in "${scenarios[@]}"; do
  log "scenario $s"
  if ! bash "$BENCH_DIR/scenarios/$s.sh"; then
    failed+=("$s")
    summary_add "$s" "FAILED" "-" "-" "-" "NO"
  fi
done

echo
echo "kiln benchmarks, $started, $(nproc) cores, $(uname -r); kiln $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
summary_print
echo
echo "details: $OUT_DIR/*.md, *.json; table: $OUT_DIR/summary.md"
if ((${#failed[@]})); then
  echo "failed scenarios: ${failed[*]}" >&2
  exit 1
fi
