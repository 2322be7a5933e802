#!/usr/bin/env bash
# kiln's main job on a small example, offline from any registry: package an application
# (a busybox userland + an app script + "weights") into a reproducible OCI image, inspect
# it, save it as an archive Docker/Podman load, load it into a fresh store, verify it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/install-deps.sh
cargo build --release -p kiln
kiln=$PWD/target/release/kiln
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export KILN_ROOT=$work/store

# The application's root filesystem.
mkdir -p "$work/rootfs/bin" "$work/rootfs/app" "$work/rootfs/models"
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
for a in sh cat echo ls wc; do ln -s busybox "$work/rootfs/bin/$a"; done
printf '#!/bin/sh\necho "iris classifier: $(wc -c < /models/iris.bin) bytes of weights"\n' > "$work/rootfs/app/serve.sh"
chmod +x "$work/rootfs/app/serve.sh"
head -c 100000 /dev/zero > "$work/rootfs/models/iris.bin"

echo "== kiln import: one reproducible layer (SOURCE_DATE_EPOCH pins every time)"
SOURCE_DATE_EPOCH=1700000000 "$kiln" import "$work/rootfs" -t iris:v1 \
  -c 'CMD ["/app/serve.sh"]' -c 'ENV MODEL=iris' -c 'LABEL org.opencontainers.image.title=iris'
"$kiln" images --digests
echo "== kiln inspect"
"$kiln" inspect iris:v1 --format 'digest={{.Digest}} cmd={{json .Config.Cmd}} env={{json .Config.Env}}'
echo "== kiln save (loads in docker, podman, skopeo) and kiln load into a fresh store"
"$kiln" save iris:v1 -o "$work/iris.tar"
sha256sum "$work/iris.tar"
KILN_ROOT=$work/store2 "$kiln" load -i "$work/iris.tar"
echo "== kiln check: every blob verified against its digest"
KILN_ROOT=$work/store2 "$kiln" check
echo "== the store is a standard OCI layout:"
umoci ls --layout "$work/store2"
