#!/usr/bin/env bash
# `make bench` (issue #9): ATP Offline side by side with skopeo and with what
# the machine can physically do, on generated deterministic workloads.
#
#   scripts/bench.sh                 # the real run: A x3, C x3, B x1; writes docs/PERFORMANCE.md
#   BENCH_TINY=1 scripts/bench.sh    # a minute-long dry run on tiny workloads (doc goes to bench-out/)
#
# Environment: BENCH_RUNS ("A:3 B:1 C:3", the order is the order of work),
# BENCH_BUDGET (seconds, default 1140: a further run of a workload is skipped
# when the previous one says it would end past the budget; the doc says so),
# BENCH_DIR (scratch, default ./bench-out; needs about 5x the largest workload),
# BENCH_B_MIB (shrink B from 4096 MiB), BENCH_DOC (default docs/PERFORMANCE.md),
# CARGO_TARGET_DIR (where the release binaries are).
#
# Every timed command runs under /usr/bin/time (wall seconds and peak RSS).
# Ours and the peer alternate who goes first in each run; medians and ratios
# come from this one invocation. Two docker-registry processes (source and
# destination, plain HTTP on 127.0.0.1) are started with configs written
# here, and stopped on exit. At C, `skopeo sync` (one process for every image)
# is a second peer; at A, `atp-installer serve` is measured as a source for
# skopeo against a docker-registry holding the same images (issue #18).
# Nothing outside BENCH_DIR, BENCH_DOC and the raw rows beside it
# (docs/bench/: results.tsv, machine.env, summary-*.json; not in a tiny run)
# is written.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${BENCH_DIR:-$ROOT/bench-out}
SELF=$ROOT/scripts/bench.sh
BIN=${BENCH_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
BUDGET=${BENCH_BUDGET:-1140}
CONC=8 # blob transfers in flight: our default, and the limit probes' parallelism

# ---------------------------------------------------------------- skopeo, isolated
SKH=$OUT/skopeo-home
sk() {
  REGISTRY_AUTH_FILE=$SKH/auth.json CONTAINERS_REGISTRIES_CONF=$SKH/registries.conf \
    DOCKER_CONFIG=$SKH/docker HOME=$SKH/home \
    skopeo --policy "$SKH/policy.json" --registries.d "$SKH/registries.d" "$@"
}

# ------------------------------------------- sub-commands timed under /usr/bin/time
# (re-invocations of this script, so that /usr/bin/time sees one process tree)
case "${1:-}" in
  peer-create) # D SRC: skopeo copy of every image into one oci: layout, then tar cf
    D=$2 SRC=$3
    while IFS=$'\t' read -r ref repo tag; do
      sk copy -q --all --src-tls-verify=false "docker://$SRC/$repo:$tag" "oci:$D/peer-oci:$ref"
    done < "$D/images.tsv"
    tar cf "$D/peer.tar" -C "$D/peer-oci" .
    exit 0 ;;
  peer-install) # D DST [untar]: (tar xf, then) skopeo copy of every image into the registry
    D=$2 DST=$3
    if [ "${4:-}" = untar ]; then mkdir -p "$D/untar" && tar xf "$D/peer.tar" -C "$D/untar"; fi
    while IFS=$'\t' read -r ref repo tag; do
      sk copy -q --all --dest-tls-verify=false "oci:$D/untar:$ref" "docker://$DST/$repo:$tag"
    done < "$D/images.tsv"
    exit 0 ;;
  peer-sync-create) # D SRC: one skopeo sync of every image into dir: folders, then tar cf
    D=$2 SRC=$3
    { printf '%s:\n  tls-verify: false\n  images:\n' "$SRC"
      awk -F'\t' '{printf "    %s: [\"%s\"]\n", $2, $3}' "$D/images.tsv"; } > "$D/sync.yaml"
    sk sync --all --src yaml --dest dir "$D/sync.yaml" "$D/peer-sync"
    tar cf "$D/peer-sync.tar" -C "$D/peer-sync" .
    exit 0 ;;
  peer-sync-install) # D DST [untar]: (tar xf, then) one skopeo sync of every image into the registry
    D=$2 DST=$3
    if [ "${4:-}" = untar ]; then mkdir -p "$D/untar-sync" && tar xf "$D/peer-sync.tar" -C "$D/untar-sync"; fi
    sk sync --all --src dir --dest docker --dest-tls-verify=false "$D/untar-sync" "$DST/bench"
    exit 0 ;;
  serve-copy) # D FROM DST [flat]: skopeo copy --all of every image from the registry FROM into DST
    D=$2 FROM=$3 DST=$4
    while IFS=$'\t' read -r _ repo tag; do
      src=$repo; [ "${5:-}" = flat ] && src=${repo##*/}
      sk copy -q --all --src-tls-verify=false --dest-tls-verify=false "docker://$FROM/$src:$tag" "docker://$DST/$repo:$tag"
    done < "$D/images.tsv"
    exit 0 ;;
  serve-get) # D SERVE: GET every blob (not manifests) from `atp-installer serve --layout flat`, 4 in flight
    D=$2 S=$3
    awk -F'\t' -v s="$S" '$4 !~ /manifest|index/ {r=$3; sub(/.*\//, "", r); print "http://" s "/v2/" r "/blobs/" $1}' "$D/blobs.tsv" |
      xargs -P 4 -n 1 curl -fsS -o /dev/null
    exit 0 ;;
esac

# ------------------------------------------------------------------------ set-up
if [ -n "${BENCH_TINY:-}" ]; then
  RUNS=${BENCH_RUNS:-"A:2 C:2 B:1"}
  DOC=${BENCH_DOC:-$OUT/PERFORMANCE.md}
  gen_args() { case $1 in A) echo "--total-mib 24" ;; B) echo "--total-mib 48" ;; C) echo "--images 12 --total-mib 6" ;; esac; }
else
  RUNS=${BENCH_RUNS:-"A:3 B:1 C:3"}
  DOC=${BENCH_DOC:-docs/PERFORMANCE.md}
  # BENCH_B_MIB: a smaller B where the scratch space cannot hold ~5 copies of 4 GiB.
  gen_args() { if [ "$1" = B ] && [ -n "${BENCH_B_MIB:-}" ]; then echo "--total-mib $BENCH_B_MIB"; fi; }
fi
for b in atp-bundler atp-installer gen-workload bench-limit; do
  [ -x "$BIN/$b" ] || { echo "bench: $BIN/$b is missing; run: cargo build --release --workspace --bins" >&2; exit 1; }
done
for c in docker-registry skopeo curl openssl sha256sum python3 dd tar; do
  command -v "$c" >/dev/null || { echo "bench: $c is missing; run: scripts/install-deps.sh" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time is missing; run: scripts/install-deps.sh" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT" "$SKH/registries.d" "$SKH/docker" "$SKH/home"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' > "$SKH/policy.json"
echo '{"auths":{}}' > "$SKH/auth.json"
: > "$SKH/registries.conf"
RESULTS=$OUT/results.tsv
printf 'workload\trun\tphase\ttool\tseconds\tmax_rss_kib\tbytes\n' > "$RESULTS"
LOG=$OUT/bench.log
: > "$LOG"
started=$(date +%s)
say() { printf '[%4ds] %s\n' $(( $(date +%s) - started )) "$*" | tee -a "$LOG"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A REG_PID REG_PORT
# start_registry NAME: a fresh, empty registry (the harness's config, minus TLS and auth)
start_registry() {
  local name=$1 dir=$OUT/registry-$1
  stop_registry "$name"
  rm -rf "$dir"; mkdir -p "$dir/data"
  local port=${REG_PORT[$name]:-$(free_port)}
  cat > "$dir/config.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $dir/data}
  delete: {enabled: true}
  maintenance: {uploadpurging: {enabled: false}}
  cache: {blobdescriptor: inmemory}
http: {addr: 127.0.0.1:$port, secret: atp-bench-not-a-secret}
YAML
  docker-registry serve "$dir/config.yml" >> "$dir/log" 2>&1 &
  REG_PID[$name]=$!; REG_PORT[$name]=$port
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && return 0; sleep 0.1; done
  echo "bench: registry $name did not come up; see $dir/log" >&2; exit 1
}
stop_registry() {
  local pid=${REG_PID[$1]:-}
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; REG_PID[$1]=; fi
}
cleanup() {
  stop_registry src; stop_registry dst
  if [ -n "$SERVE_TPID" ]; then kill "$(pgrep -P "$SERVE_TPID")" 2>/dev/null || true; fi
}
trap cleanup EXIT

# measure W RUN PHASE TOOL BYTES CMD...: one timed command into results.tsv
# (its standard output to the log, or to MEASURE_STDOUT when that is set)
measure() {
  local w=$1 run=$2 phase=$3 tool=$4 bytes=$5; shift 5
  local tf=$OUT/time.out out=${MEASURE_STDOUT:-$LOG}
  [ -n "${MEASURE_STDOUT:-}" ] && : > "$out"
  if ! /usr/bin/time -f '%e %M' -o "$tf" "$@" >> "$out" 2>> "$LOG"; then
    echo "bench: $phase/$tool failed: $*" >&2; tail -n 30 "$LOG" >&2; exit 1
  fi
  local secs rss; read -r secs rss < <(tail -n 1 "$tf")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$run" "$phase" "$tool" "$secs" "$rss" "$bytes" >> "$RESULTS"
  say "$w run $run  $phase  $tool: ${secs}s  peak RSS $((rss / 1024)) MiB"
}

# profiled W RUN PHASE BYTES CMD...: `measure` of one of our commands run with
# --json, then each `timings_ms` entry of its summary as a row
# (phase profile-PHASE, tool = the timing's name, seconds): the per-phase
# profile that says what bounds each number (issue #21).
profiled() {
  local w=$1 run=$2 phase=$3 bytes=$4; shift 4
  MEASURE_STDOUT=$OUT/summary.out measure "$w" "$run" "$phase" ours "$bytes" "$@" --json
  python3 - "$OUT/summary.out" "$w" "$run" "$phase" >> "$RESULTS" <<'PY'
import json, sys
path, w, run, phase = sys.argv[1:5]
try:
    timings = json.load(open(path)).get("timings_ms") or {}
except ValueError:
    timings = {}
for name, ms in timings.items():
    if isinstance(ms, (int, float)):
        print(f"{w}\t{run}\tprofile-{phase}\t{name}\t{ms / 1000:.3f}\t0\t0")
PY
}

# The serve row (issue #18): `atp-installer serve` of our bundle under
# /usr/bin/time (its peak RSS is recorded when it is stopped).
SERVE_TPID=
start_serve() {
  local D=$1 port; port=$(free_port)
  /usr/bin/time -f '%e %M' -o "$OUT/serve.time" "$BIN/atp-installer" -q serve "$D/ours.tar" \
    --key "$OUT/key.pub" --listen "127.0.0.1:$port" --layout flat >> "$LOG" 2>&1 &
  SERVE_TPID=$!; SERVE=127.0.0.1:$port
  for _ in $(seq 600); do curl -fs "http://$SERVE/v2/" >/dev/null && return 0; sleep 0.1; done
  echo "bench: serve did not come up; see $LOG" >&2; exit 1
}
# stop_serve W RUN: stop it (SIGTERM to serve itself, not to time) and record its peak RSS
stop_serve() {
  local child; child=$(pgrep -P "$SERVE_TPID" || true)
  [ -n "$child" ] && kill -TERM "$child" 2>/dev/null || true
  wait "$SERVE_TPID" 2>/dev/null || true
  local secs rss; read -r secs rss < <(tail -n 1 "$OUT/serve.time")
  printf '%s\t%s\tserve\tserve-rss\t%s\t%s\t0\n' "$1" "$2" "$secs" "$rss" >> "$RESULTS"
  say "$1 run $2  serve peak RSS $((rss / 1024)) MiB"
  SERVE_TPID=
}

# serve_get_refs W RUN BLOB_BYTES: the two references for serve's GET row:
# `dd` of the cached bundle (the rate the file can be read at) and the same
# GETs from `bench-fileserver.py` (sendfile from the untarred blobs: no
# hashing, no copy through user space; what HTTP on loopback carries at all)
serve_get_refs() {
  local w=$1 run=$2 bytes=$3 D=$OUT/$1 port; port=$(free_port)
  measure "$w" "$run" serve-get limit-read "$size" dd if="$D/ours.tar" of=/dev/null bs=1M status=none
  python3 scripts/bench-fileserver.py "$port" "$D/untar/blobs/sha256" >> "$LOG" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  measure "$w" "$run" serve-get limit-sendfile "$bytes" "$SELF" serve-get "$D" "127.0.0.1:$port"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}

export ATP_KEY_PASSWORD=""
"$BIN/atp-bundler" -q keygen --no-password --output "$OUT/key" >> "$LOG" 2>&1

# ---------------------------------------------------------------- the machine
{
  echo "cores=$(nproc)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "sha_ni=$(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)"
  echo "mem_gib=$(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)"
  echo "kernel=$(uname -r)"
  echo "fs=$(df -T "$OUT" | awk 'NR==2 {print $2}')"
  echo "skopeo=$(skopeo --version | awk '{print $3}')"
  echo "registry=$(docker-registry --version 2>/dev/null | awk '{print $3}')"
  echo "openssl=$(openssl version | awk '{print $2}')"
  echo "coreutils=$(sha256sum --version | awk 'NR==1 {print $4}')"
  echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "runs=$RUNS"
  echo "tiny=${BENCH_TINY:-}"
  echo "load=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "others=$(ps -eo comm= | grep -cE '^(rustc|cargo|cc1|ld|rust-lld)$' || true)"
} > "$OUT/machine.env"

# ---------------------------------------------------------------- one workload
bench_workload() {
  local w=$1 runs=$2
  local D=$OUT/$w
  say "== workload $w: generating"
  # shellcheck disable=SC2046
  "$BIN/gen-workload" "$w" "$D" $(gen_args "$w") >> "$LOG"
  start_registry src
  local SRC=127.0.0.1:${REG_PORT[src]}
  say "$w: seeding the source registry with skopeo ($(wc -l < "$D/images.tsv") images)"
  local t0; t0=$(date +%s.%N)
  export -f sk; export SKH
  xargs -P 4 -L 1 bash -c 'sk copy -q --all --dest-tls-verify=false "oci:$0/layout:$1" "docker://$3/$2:1.0" >/dev/null' "$D" \
    < <(cut -f1,2 "$D/images.tsv" | sed "s|\$|\t$SRC|") 2>>"$LOG" ||
    { echo "bench: seeding failed; see $LOG" >&2; exit 1; }
  say "$w: seeded in $(python3 -c "import time; print(round(time.time()-$t0, 1))")s"
  rm -rf "$D/layout" # the registry holds it now; saves disk at B

  {
    printf 'apiVersion: atp-offline/v1\nkind: Bundle\nmetadata: {name: bench-%s, version: 1.0.0}\n' "$w"
    printf 'spec:\n  channel: bench\n  sequence: 1\n  images:\n'
    while IFS=$'\t' read -r _ repo tag; do printf '    - %s/%s:%s\n' "$SRC" "$repo" "$tag"; done < "$D/images.tsv"
  } > "$D/spec.yaml"

  local run t_run=0
  for run in $(seq 1 "$runs"); do
    local now; now=$(date +%s)
    if [ "$run" -gt 1 ] && [ $(( now - started + now - t_run )) -gt "$BUDGET" ]; then
      say "$w: skipping runs $run..$runs: another would end past the ${BUDGET}s budget"
      echo "$w $((run - 1)) $runs" >> "$OUT/skipped.txt"
      break
    fi
    t_run=$now
    local first=ours; [ $((run % 2)) -eq 0 ] && first=peer
    # create
    rm -rf "$D/ours.tar" "$D/peer.tar" "$D/peer-oci" "$D/untar"
    for who in $first $([ "$first" = ours ] && echo peer || echo ours); do
      if [ "$who" = ours ]; then
        profiled "$w" "$run" create 0 "$BIN/atp-bundler" -q create --spec "$D/spec.yaml" --key "$OUT/key.key" \
          --output "$D/ours.tar" --plain-http "$SRC"
      else
        measure "$w" "$run" create skopeo 0 "$SELF" peer-create "$D" "$SRC"
        rm -rf "$D/peer-oci"
      fi
    done
    if [ "$w" = C ]; then # one skopeo process for all images (issue #21)
      rm -rf "$D/peer-sync" "$D/peer-sync.tar"
      measure "$w" "$run" create skopeo-sync 0 "$SELF" peer-sync-create "$D" "$SRC"
      rm -rf "$D/peer-sync"
    fi
    local size; size=$(stat -c %s "$D/ours.tar")
    local psize; psize=$(stat -c %s "$D/peer.tar")
    measure "$w" "$run" create limit-get "$size" "$BIN/bench-limit" get "$SRC" "$D/blobs.tsv" "$CONC"
    measure "$w" "$run" create limit-write "$size" dd if=/dev/zero of="$D/dd.tmp" bs=4M \
      count=$(( (size + 4194303) / 4194304 )) conv=fdatasync status=none
    rm -f "$D/dd.tmp"
    printf '%s\t%s\tsize\tours\t0\t0\t%s\n%s\t%s\tsize\tskopeo\t0\t0\t%s\n' "$w" "$run" "$size" "$w" "$run" "$psize" >> "$RESULTS"

    # verify (all three read the same, page-cached, file: read it once first,
    # so the first of them does not pay for what skopeo's files pushed out)
    cat "$D/ours.tar" > /dev/null
    profiled "$w" "$run" verify "$size" "$BIN/atp-installer" -q verify "$D/ours.tar" --key "$OUT/key.pub"
    measure "$w" "$run" verify sha256sum "$size" sha256sum "$D/ours.tar"
    measure "$w" "$run" verify limit-openssl "$size" openssl dgst -sha256 "$D/ours.tar"

    # install + re-install, each side into a fresh empty registry
    for who in $first $([ "$first" = ours ] && echo peer || echo ours); do
      start_registry dst
      local DST=127.0.0.1:${REG_PORT[dst]}
      if [ "$who" = ours ]; then
        local st=$D/state-$run; rm -rf "$st"
        for phase in install reinstall; do
          profiled "$w" "$run" "$phase" "$size" "$BIN/atp-installer" -q install "$D/ours.tar" --key "$OUT/key.pub" \
            --registry "$DST" --plain-http --state-dir "$st"
        done
      else
        measure "$w" "$run" install skopeo "$psize" "$SELF" peer-install "$D" "$DST" untar
        measure "$w" "$run" reinstall skopeo "$psize" "$SELF" peer-install "$D" "$DST"
      fi
    done
    if [ "$w" = C ]; then
      start_registry dst
      measure "$w" "$run" install skopeo-sync "$psize" "$SELF" peer-sync-install "$D" "127.0.0.1:${REG_PORT[dst]}" untar
      measure "$w" "$run" reinstall skopeo-sync "$psize" "$SELF" peer-sync-install "$D" "127.0.0.1:${REG_PORT[dst]}"
      rm -rf "$D/untar-sync" "$D/peer-sync.tar"
    fi
    if [ "$w" = A ]; then # serving (issue #18): skopeo copy from serve and from a registry, GETs, RSS
      start_serve "$D"
      for who in $first $([ "$first" = ours ] && echo peer || echo ours); do
        start_registry dst
        if [ "$who" = ours ]; then
          measure "$w" "$run" serve ours "$size" "$SELF" serve-copy "$D" "$SERVE" "127.0.0.1:${REG_PORT[dst]}" flat
        else
          measure "$w" "$run" serve registry "$size" "$SELF" serve-copy "$D" "$SRC" "127.0.0.1:${REG_PORT[dst]}"
        fi
      done
      local blob_bytes; blob_bytes=$(awk -F'\t' '$4 !~ /manifest|index/ {n += $2} END {printf "%.0f\n", n}' "$D/blobs.tsv")
      measure "$w" "$run" serve-get ours "$blob_bytes" "$SELF" serve-get "$D" "$SERVE"
      serve_get_refs "$w" "$run" "$blob_bytes"
      stop_serve "$w" "$run"
    fi
    if [ "$w" = B ]; then # serving a 4 GiB bundle (issue #18): its peak RSS while 4 clients GET every blob
      start_serve "$D"
      local blob_bytes; blob_bytes=$(awk -F'\t' '$4 !~ /manifest|index/ {n += $2} END {printf "%.0f\n", n}' "$D/blobs.tsv")
      measure "$w" "$run" serve-get ours "$blob_bytes" "$SELF" serve-get "$D" "$SERVE"
      serve_get_refs "$w" "$run" "$blob_bytes"
      stop_serve "$w" "$run"
    fi
    # the registry's own ingest ceiling for the same blobs (from the untarred layout)
    start_registry dst
    measure "$w" "$run" install limit-ingest "$size" "$BIN/bench-limit" ingest "127.0.0.1:${REG_PORT[dst]}" \
      "$D/blobs.tsv" "$D/untar/blobs/sha256" "$CONC"
    stop_registry dst
    rm -rf "$OUT/registry-dst" "$D/untar"
  done
  cp "$D/summary.json" "$OUT/summary-$w.json"
  stop_registry src
  rm -rf "$D" "$OUT/registry-src"
}

for spec in $RUNS; do
  bench_workload "${spec%%:*}" "${spec#*:}"
done
say "writing $DOC"
python3 scripts/bench-report.py "$OUT" "$DOC"
if [ -z "${BENCH_TINY:-}" ]; then # the raw rows beside the generated table (issue #21)
  mkdir -p "$(dirname "$DOC")/bench"
  cp "$RESULTS" "$OUT/machine.env" "$OUT"/summary-*.json "$(dirname "$DOC")/bench/"
  if [ -f "$OUT/skipped.txt" ]; then cp "$OUT/skipped.txt" "$(dirname "$DOC")/bench/"; fi
fi
say "done in $(( $(date +%s) - started ))s"
