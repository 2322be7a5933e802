#!/usr/bin/env bash
# Scenario run: start latency of a busybox container running /bin/true, end to end, 100 starts
# each: `kiln run --rm` (warm store) against `runc run` on a prepared bundle of the same root
# filesystem (target: kiln <= 0.5x runc) and `podman run --rm` (target: kiln <= 0.1x podman),
# with `docker run --rm` as information; and kiln with its default private network (pasta)
# against `--network none` (target: at most 1.2x, p50 and p99). Prints p50 and p99.
# kiln starts pasta on the container's first packet, so /bin/true never starts it: as
# information, a container that resolves deb.debian.org (one DNS exchange through pasta,
# which is started, answers and is stopped) is timed too.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

STARTS=${KILN_BENCH_STARTS:-100}
WORK=$CACHE/run
KROOT=$WORK/kiln-root
BUNDLE=$WORK/bundle
REF=localhost/kiln-bench/busybox:run
rm -rf "$WORK"
mkdir -p "$BUNDLE/rootfs"
busybox_rootfs "$WORK/rootfs" sh true nslookup

log "preparing the image in kiln, podman, docker and a runc bundle"
KILN_ROOT=$KROOT "$KILN_BIN" import "$WORK/rootfs" -t "$REF" >/dev/null
KILN_ROOT=$KROOT "$KILN_BIN" run --rm "$REF" /bin/true # unpacks the snapshot once: a warm store
KILN_ROOT=$KROOT "$KILN_BIN" save "$REF" -o "$WORK/image.tar"
KILN_ROOT=$KROOT "$KILN_BIN" export "$REF" -o "$WORK/rootfs.tar"
tar -C "$BUNDLE/rootfs" -xf "$WORK/rootfs.tar"
(cd "$BUNDLE" && runc spec && python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open("config.json", "w"))
PY
)
bpodman load -q -i "$WORK/image.tar" >/dev/null
PODMAN_RUN="$PODMAN run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
cmds=(-n "kiln run" "$KILN_BIN --root $KROOT run --rm --network none $REF /bin/true"
      -n "kiln run (default network)" "$KILN_BIN --root $KROOT run --rm $REF /bin/true"
      -n "kiln run (default network, DNS lookup)" "$KILN_BIN --root $KROOT run --rm $REF nslookup deb.debian.org"
      -n "runc run" "runc run --bundle $BUNDLE kiln-bench-runc"
      -n "podman run" "$PODMAN_RUN $REF /bin/true")
if start_docker; then
  $DOCKER_CLI load -q -i "$WORK/image.tar" >/dev/null
  cmds+=(-n "docker run" "$DOCKER_CLI run --rm --network none $REF /bin/true")
fi
if [[ -n $BASELINE_BIN ]]; then
  KILN_ROOT=$WORK/baseline-root "$BASELINE_BIN" import "$WORK/rootfs" -t "$REF" >/dev/null
  KILN_ROOT=$WORK/baseline-root "$BASELINE_BIN" run --rm "$REF" /bin/true
  cmds+=(-n "kiln run (baseline)" "$BASELINE_BIN --root $WORK/baseline-root run --rm --network none $REF /bin/true")
fi
hf run --warmup 3 --runs "$STARTS" -N "${cmds[@]}"

python3 - "$OUT_DIR/run.json" <<'PY' >&2
import json, sys
print(f"{'command':<28} {'p50 ms':>8} {'p99 ms':>8}")
for r in json.load(open(sys.argv[1]))["results"]:
    t = sorted(r["times"])
    p = lambda q: t[min(len(t) - 1, int(round(q * (len(t) - 1))))] * 1000
    print(f"{r['command']:<28} {p(0.5):>8.1f} {p(0.99):>8.1f}")
PY
k=$(hf_median run "kiln run")
compare_times "run --rm /bin/true vs runc" "$k" "runc" "$(hf_median run "runc run")" 2
compare_times "run --rm /bin/true vs podman" "$k" "podman" "$(hf_median run "podman run")" 10
compare_times "run --rm /bin/true vs docker" "$k" "docker" "$(hf_median run "docker run")" ""
compare_baseline "run --rm /bin/true vs baseline" "$k" "$(hf_median run "kiln run (baseline)")"
# The default network (kiln configures it; pasta starts on the first packet) against none.
python3 - "$OUT_DIR/run.json" >>"$SUMMARY" <<'PY'
import json, sys
rs = {r["command"]: sorted(r["times"]) for r in json.load(open(sys.argv[1]))["results"]}
def p(t, q):
    return t[min(len(t) - 1, int(round(q * (len(t) - 1))))]
none, net = rs["kiln run"], rs["kiln run (default network)"]
for q, name in ((0.5, "p50"), (0.99, "p99")):
    a, b = p(net, q), p(none, q)
    r = a / b
    print("\t".join([f"run /bin/true, default network vs none ({name})", f"{a * 1000:.1f} ms",
                     f"--network none {b * 1000:.1f} ms", f"{r:.2f}x", "<= 1.2x", "yes" if r <= 1.2 else "NO"]))
dns = rs["kiln run (default network, DNS lookup)"]
print("\t".join(["run nslookup deb.debian.org, default network (pasta started; p50)",
                 f"{p(dns, 0.5) * 1000:.1f} ms", f"/bin/true {p(net, 0.5) * 1000:.1f} ms", "-", "(info)", "-"]))
PY
