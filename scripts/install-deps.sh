#!/usr/bin/env bash
# Install the real parts the tests and the demo run against (the registry,
# skopeo, and the container runtimes nodes pull with: containerd, podman),
# idempotently:
# Debian packages only when one is missing (after `apt-get update`), and a
# Python venv for the PyPI tools (kubernetes-validate, oras).
set -euo pipefail
cd "$(dirname "$0")/.."

# package:command pairs; a package is installed only when its command is absent.
pkgs=(docker-registry:docker-registry skopeo:skopeo apache2-utils:htpasswd
      prometheus:promtool zstd:zstd openssl:openssl python3-venv:
      iproute2:ip util-linux:unshare curl:curl time:
      containerd:containerd podman:podman)
missing=()
for pair in "${pkgs[@]}"; do
  pkg=${pair%%:*}; cmd=${pair#*:}
  if [ -n "$cmd" ]; then
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  else
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package may try to start a registry on :5000 with the system
# config; the tests never use it, and start their own on 127.0.0.1.
command -v kubectl >/dev/null || { echo "install-deps: kubectl is required (it ships on the machine image)" >&2; exit 1; }

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" 2>/dev/null || { rm -rf "$venv"; python3 -m pip install -q virtualenv && python3 -m virtualenv -q "$venv"; }
fi
want=(kubernetes-validate oras)
for p in "${want[@]}"; do
  "$venv/bin/python" -m pip show -q "$p" >/dev/null 2>&1 || "$venv/bin/python" -m pip install -q "$p"
done
