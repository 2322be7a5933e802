#!/usr/bin/env bash
# Scenario debian: a Debian bookworm base with python3 and pip straight from the archive,
# `kiln base debian` against `mmdebstrap --variant=minbase` (same packages, same mirror).
#  - cold: empty store and cache (indexes and .debs downloaded); target kiln <= 0.5x mmdebstrap.
#  - warm .deb cache: from the lock, every layer unpacked and written again, no container
#    step for ca-certificates (written natively); target <= 2 s. The .deb cache keeps each
#    package's zstd repack (made while the first build unpacked it), which is unpacked
#    instead of decoding xz again. The store of each run is
#    moved aside, not deleted, until the last run: deleting tens of thousands of files on
#    this ext4 (`discard`) slows file creation for minutes (MACHINE-NOTES.md).
#  - warm: from the lock with the layer cache too (the usual CI rebuild).
#  - size: kiln's image flattened vs mmdebstrap's tarball; target kiln no larger.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

WORK=$CACHE/debian
KROOT=$WORK/kiln-root
LOCK=$WORK/py.lock
PKGS=python3,python3-pip
RUNS=${KILN_BENCH_DEBIAN_RUNS:-3}
SOURCES=("deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main")
command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: apt-get install mmdebstrap"
rm -rf "$WORK"
mkdir -p "$WORK"
KILN="$KILN_BIN --root $KROOT"
MM="mmdebstrap --quiet --variant=minbase --include=$PKGS bookworm $WORK/mm.tar"
for s in "${SOURCES[@]}"; do MM+=" '$s'"; done

log "debian: cold builds ($RUNS each; both download from deb.debian.org every time)"
hf debian-cold --runs "$RUNS" --warmup 0 \
  --prepare "rm -rf $KROOT $LOCK" \
  -n "kiln base debian (cold)" "$KILN base debian --suite bookworm --packages $PKGS -t py:b --lock $LOCK -q" \
  -n "mmdebstrap minbase (cold)" "$MM"

log "debian: from the lock with a warm .deb cache (layers rebuilt) and fully warm"
# Keep only the .deb cache: the store, its snapshots and the layer cache go (moved into
# $TRASH, deleted after the runs).
TRASH=$WORK/trash
keep_debs="d=\$(mktemp -d -p $TRASH) && find $KROOT -mindepth 1 -maxdepth 1 ! -name cache -exec mv -t \$d {} + && mkdir -p \$d/cache && for x in layers indexes; do if [ -e $KROOT/cache/debian/\$x ]; then mv $KROOT/cache/debian/\$x \$d/cache/\$x; fi; done && if [ -e $KROOT/cache/build ]; then mv $KROOT/cache/build \$d/cache/build; fi"
mkdir -p "$TRASH"
# The cold runs' --prepare (run before mmdebstrap's too) removed the store and the lock:
# one build to resolve the lock and fill the .deb cache.
$KILN base debian --suite bookworm --packages $PKGS -t py:b --lock $LOCK -q >/dev/null
# The same binary with ca-certificates' script run in the container step (as before it
# was written natively), for the difference in one run.
hf debian-warm --runs 5 --warmup 1 \
  --prepare "$keep_debs" \
  -n "kiln base debian (warm .deb cache)" "$KILN base debian --suite bookworm --packages $PKGS -t py:b --lock $LOCK -q" \
  -n "ca-certificates by its script (warm .deb cache)" "KILN_DEBIAN_NO_NATIVE=ca-certificates $KILN base debian --suite bookworm --packages $PKGS -t py:b --lock $LOCK -q"
rm -rf "$TRASH"
# Which maintainer scripts still run in a container on a warm rebuild (and its phases).
mkdir -p "$TRASH"
eval "$keep_debs"
$KILN base debian --suite bookworm --packages $PKGS -t py:b --lock $LOCK --json >"$OUT_DIR/debian-warm-report.json"
note "warm rebuild: container step for $(python3 -c "import json; print(', '.join(json.load(open('$OUT_DIR/debian-warm-report.json'))['scripts_run']) or 'nothing')")"
rm -rf "$TRASH"
hf debian-cached --runs 10 --warmup 1 \
  -n "kiln base debian (warm)" "$KILN base debian --suite bookworm --packages $PKGS -t py:b --lock $LOCK -q"

$KILN run --rm --network none py:b python3 -c 'import ssl, sqlite3, venv, pip' ||
  note "WARNING: the image kiln built does not run python3 and pip"
$KILN export py:b -o "$WORK/kiln.tar"
ksize=$(stat -c %s "$WORK/kiln.tar")
msize=$(stat -c %s "$WORK/mm.tar")
kpk=$(python3 -c "import json; print(len(json.load(open('$LOCK'))['packages']))")
mpk=$(tar -xOf "$WORK/mm.tar" ./var/lib/dpkg/status | grep -c '^Package:')
note "packages: kiln $kpk, mmdebstrap $mpk; sizes: kiln image $ksize bytes flattened, mmdebstrap tarball $msize bytes"

compare_times "debian base cold (minbase+python3+pip)" "$(hf_median debian-cold "kiln base debian (cold)")" mmdebstrap "$(hf_median debian-cold "mmdebstrap minbase (cold)")" 2
warm=$(hf_median debian-warm "kiln base debian (warm .deb cache)")
summary_add "debian base, warm .deb cache (layers re-made)" "$(printf %.2f "$warm") s" "-" "-" "<= 2 s" "$(python3 -c "print('yes' if $warm <= 2 else 'NO')")"
compare_times "debian warm .deb cache vs ca-certificates by its script (info)" "$warm" script \
  "$(hf_median debian-warm "ca-certificates by its script (warm .deb cache)")" ""
cached=$(hf_median debian-cached "kiln base debian (warm)")
summary_add "debian base, warm (layer cache)" "$(printf %.2f "$cached") s" "-" "-" "(info)" "-"
summary_add "debian base image size" "$((ksize / 1000000)) MB" "mmdebstrap $((msize / 1000000)) MB" \
  "kiln $(python3 -c "print(f'{$ksize / $msize:.2f}')")x" "<= 1.0x" "$(python3 -c "print('yes' if $ksize <= $msize else 'NO')")"
true
