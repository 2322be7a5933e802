#!/usr/bin/env bash
# Scenario debian: a Debian bookworm base with python3 and pip straight from the archive,
# `kiln base debian` against `mmdebstrap --variant=minbase` (same packages, same mirror).
#  - cold: empty store and cache (indexes and .debs downloaded); target kiln <= 0.5x mmdebstrap.
#  - warm .deb cache: from the lock, every layer unpacked and written again; target <= 2 s.
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
# Keep only the .deb cache: the store, its snapshots and the layer cache go.
keep_debs="find $KROOT -mindepth 1 -maxdepth 1 ! -name cache -exec rm -rf {} + ; rm -rf $KROOT/cache/debian/layers $KROOT/cache/debian/indexes $KROOT/cache/build"
hf debian-warm --runs 5 --warmup 1 \
  --prepare "$keep_debs" \
  -n "kiln base debian (warm .deb cache)" "$KILN base debian --suite bookworm --packages $PKGS -t py:b --lock $LOCK -q"
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
summary_add "debian base, warm .deb cache" "$warm s" "-" "-" "<= 2 s" "$(python3 -c "print('yes' if $warm <= 2 else 'NO')")"
cached=$(hf_median debian-cached "kiln base debian (warm)")
summary_add "debian base, warm (layer cache)" "$cached s" "-" "-" "(info)" "-"
summary_add "debian base image size" "$((ksize / 1000000)) MB" "mmdebstrap $((msize / 1000000)) MB" \
  "kiln $(python3 -c "print(f'{$ksize / $msize:.2f}')")x" "<= 1.0x" "$(python3 -c "print('yes' if $ksize <= $msize else 'NO')")"
true
