#!/usr/bin/env bash
# The main job end to end on built-in defaults. Grows as the pieces land.
set -euo pipefail
cd "$(dirname "$0")/.."
./target/debug/atp-bundler --version
./target/debug/atp-installer --version
