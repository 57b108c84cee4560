#!/usr/bin/env bash
# make release: the static binaries, their SHA256SUMS, and SHA256SUMS.sig
# (base64 DER ECDSA P-256 / SHA-256, the scheme of index.json.sig) made with
# the release key. Writes dist.partial/ and renames it to dist/ only when
# everything is in it. docs/guide.md shows how a site checks it.
#
#   RELEASE_KEY       the release private key (required); its password in
#                     ATP_KEY_PASSWORD (COSIGN_PASSWORD)
#   RELEASE_BIN_DIR   where the built binaries are
#                     (default target/static/x86_64-unknown-linux-gnu/release)
#   DIST              the output folder (default dist)
set -euo pipefail

: "${RELEASE_KEY:?hint: make release RELEASE_KEY=path/to/release.key (password in ATP_KEY_PASSWORD)}"
bin_dir=${RELEASE_BIN_DIR:-target/static/x86_64-unknown-linux-gnu/release}
dist=${DIST:-dist}
partial="$dist.partial"

rm -rf "$partial"
mkdir -p "$partial"
for b in atp-bundler atp-installer; do
    # Stripped: what a stick carries. The unstripped build stays in $bin_dir.
    strip -o "$partial/$b" "$bin_dir/$b"
    if ! file "$partial/$b" | grep -q 'statically linked\|static-pie linked'; then
        echo "release: $bin_dir/$b is not statically linked" >&2
        exit 1
    fi
done
(cd "$partial" && sha256sum atp-bundler atp-installer > SHA256SUMS)
"$partial/atp-bundler" sign-file --key "$RELEASE_KEY" \
    --input "$partial/SHA256SUMS" --output "$partial/SHA256SUMS.sig"
rm -rf "$dist"
mv "$partial" "$dist"
echo "release: $dist/{atp-bundler,atp-installer,SHA256SUMS,SHA256SUMS.sig}"
