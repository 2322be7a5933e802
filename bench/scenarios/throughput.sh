#!/usr/bin/env bash
# Scenario throughput: sha256, gzip and zstd as kiln-layer does them (the `throughput` example, data
# in memory) against the command-line tools on the same bytes (read from the page cache).
# Targets: sha256 >= 1000 MB/s on one core; compression and decompression >= 0.8x the C tool
# at the same thread count (gzip: one core; zstd compression: all cores, like `zstd -T0`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

MIB=${KILN_BENCH_THROUGHPUT_MIB:-256}
WORK=$CACHE/throughput
DATA=$WORK/data.bin
EXAMPLE=$TARGET_DIR/release/examples/throughput
KILN_TSV=$OUT_DIR/throughput-kiln.tsv
[[ -x $EXAMPLE ]] || die "$EXAMPLE missing: cargo build --release -p kiln-layer --example throughput"
mkdir -p "$WORK"
rm -f "$KILN_TSV"

log "throughput: kiln-layer on $MIB MiB in memory (median of 3)"
"$EXAMPLE" --mib "$MIB" --runs 3 --data "$DATA" --tsv "$KILN_TSV" | tee "$OUT_DIR/throughput-kiln.md" >&2

log "throughput: command-line tools on the same $MIB MiB file"
gzip -6 -c "$DATA" >"$DATA.gz"
zstd -q -f -3 -T0 "$DATA" -o "$DATA.zst"
cat "$DATA" "$DATA.gz" "$DATA.zst" >/dev/null
cli=(
  -n "sha256sum" "sha256sum $DATA"
  -n "gzip -6" "gzip -6 -c $DATA >/dev/null"
  -n "gzip -1" "gzip -1 -c $DATA >/dev/null"
  -n "gzip -d" "gzip -d -c $DATA.gz >/dev/null"
  -n "zstd -T0 -3" "zstd -q -T0 -3 -c $DATA >/dev/null"
  -n "zstd -d" "zstd -q -d -c $DATA.zst >/dev/null"
)
if command -v pigz >/dev/null; then
  cli+=(-n "pigz -6 -p1" "pigz -6 -p1 -c $DATA >/dev/null" -n "pigz -6" "pigz -6 -c $DATA >/dev/null")
fi
hf throughput-cli --runs 3 --warmup 0 "${cli[@]}"

python3 - "$KILN_TSV" "$OUT_DIR/throughput-cli.json" "$(stat -c %s "$DATA")" "$(nproc)" >>"$SUMMARY" <<'EOF'
import json, sys
kiln = {l.split("\t")[0]: float(l.split("\t")[1]) for l in open(sys.argv[1]) if l.strip()}
cli = {r["command"]: r["median"] for r in json.load(open(sys.argv[2]))["results"]}
mb = int(sys.argv[3]) / 1e6
cores = sys.argv[4]
def row(scenario, op, tool, target, info=False):
    k = kiln[op]
    if tool not in cli:
        return
    p = mb / cli[tool]
    r = k / p
    ratio = f"kiln {r:.1f}x faster" if r >= 1 else f"kiln {1 / r:.1f}x slower"
    if info:
        t, met = "(info)", "-"
    elif target.endswith("MB/s"):
        t, met = target, "yes" if k >= float(target.split()[1]) else "NO"
    else:
        t, met = f">= {target}x {tool}", "yes" if r >= float(target) else "NO"
    print("\t".join([scenario, f"{k:.0f} MB/s", f"{tool} {p:.0f} MB/s", ratio, t, met]))
row("sha256 (1 core)", "sha256", "sha256sum", ">= 1000 MB/s")
row("gzip-6 compress (1 core)", "gzip-compress", "gzip -6", "0.8")
row("gzip-6 compress (info)", "gzip-compress", "pigz -6 -p1", "", info=True)
row("gzip-6 compress (info)", "gzip-compress", f"pigz -6", "", info=True)
row("gzip-6 compress (info)", "gzip-compress", "gzip -1", "", info=True)
row("gzip decompress (1 core)", "gzip-decompress", "gzip -d", "0.8")
row(f"zstd-3 compress ({cores} threads)", "zstd-compress", "zstd -T0 -3", "0.8")
row("zstd decompress (1 core)", "zstd-decompress", "zstd -d", "0.8")
EOF
rm -f "$DATA.gz" "$DATA.zst"
