#!/usr/bin/env bash
# `make demo`: the main job end to end on built-in defaults.
#   fixtures -> signed bundle -> verify -> local registry -> install -> rendered overlay
# Everything lands in ./demo-out; the registry runs on 127.0.0.1 and is
# stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CARGO_TARGET_DIR:-target}/debug
OUT=demo-out
rm -rf "$OUT"
mkdir -p "$OUT"

step() { printf '\n== %s\n' "$*"; }

step "1. signing key (empty password for the demo; set ATP_KEY_PASSWORD in real use)"
export ATP_KEY_PASSWORD=""
"$BIN/atp-bundler" keygen --no-password --output "$OUT/release"

step "2. bundle: fixture images + the ATP kustomize tree (manifests/bundle.yaml)"
"$BIN/atp-bundler" create --spec manifests/bundle.yaml --key "$OUT/release.key" --output "$OUT/atp-1.4.0.tar"
"$BIN/atp-bundler" inspect "$OUT/atp-1.4.0.tar"

step "3. verify at the gap: every byte against the public key"
"$BIN/atp-installer" verify "$OUT/atp-1.4.0.tar" --key "$OUT/release.pub"

step "4. a site registry on 127.0.0.1 (Debian docker-registry, our own config)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$OUT/registry"
cat > "$OUT/registry/config.yml" <<YAML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $PWD/$OUT/registry/data}}
http: {addr: 127.0.0.1:$port}
YAML
docker-registry serve "$OUT/registry/config.yml" > "$OUT/registry/log" 2>&1 &
reg_pid=$!
trap 'kill $reg_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
echo "registry at 127.0.0.1:$port (plain HTTP, asked for explicitly with --plain-http)"

step "5. install: verify, push, render, air-gap gate"
"$BIN/atp-installer" install "$OUT/atp-1.4.0.tar" --key "$OUT/release.pub" \
  --registry "127.0.0.1:$port" --plain-http \
  --state-dir "$OUT/state" --render-to "$OUT/render" --metrics-file "$OUT/metrics.prom"

step "6. again: idempotent, nothing uploaded"
"$BIN/atp-installer" install "$OUT/atp-1.4.0.tar" --key "$OUT/release.pub" \
  --registry "127.0.0.1:$port" --plain-http \
  --state-dir "$OUT/state" --render-to "$OUT/render" --metrics-file "$OUT/metrics.prom"

step "7. the rendered overlay: every image on the site registry, pinned by digest"
grep -n 'image:' "$OUT/render/rendered.yaml"
echo
echo "rendered: $OUT/render/rendered.yaml   metrics: $OUT/metrics.prom   receipts: $OUT/state/receipts/"
echo "apply it on a real cluster with: atp-installer install ... --apply (see docs/guide.md)"
