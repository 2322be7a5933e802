#!/usr/bin/env bash
# kiln's main job, from nothing: build examples/iris (a scikit-learn model served by
# FastAPI) into an OCI image — Debian from the archive, Python packages from PyPI through
# uv, the model as its own layer — run it, and ask it for a prediction. No container
# registry is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/install-deps.sh
cargo build --release -p kiln
kiln=$PWD/target/release/kiln
work=$(mktemp -d)
export KILN_ROOT=$work/store
cid=
cleanup() {
  [ -n "$cid" ] && "$kiln" rm -f "$cid" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
cp -r examples/iris "$work/iris"

echo "== kiln build examples/iris: kiln.lock written, layers weights / OS / env / Python / code"
"$kiln" build "$work/iris"
"$kiln" images
echo "== kiln run -d -p 8000: the app as the non-root user"
port=${KILN_DEMO_PORT:-8000}
cid=$("$kiln" run -d -p "127.0.0.1:$port:8000" iris:0.1.0)
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.25
done
echo "== POST /predict"
curl -s -X POST "http://127.0.0.1:$port/predict" -H 'content-type: application/json' \
  -d '{"features": [[5.1, 3.5, 1.4, 0.2]]}'
echo
echo "== kiln env: the image's exact environment, read from its layers"
"$kiln" env iris:0.1.0 | sed -n "1,24p"
echo "== rebuilt after an edit: only the code layer changes"
echo "# edited" >> "$work/iris/app.py"
"$kiln" build "$work/iris" 2>&1 | grep -E "code|built"
