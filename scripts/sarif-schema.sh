#!/usr/bin/env bash
# Prints the path of the SARIF 2.1.0 JSON schema, fetching it first when it
# is not cached. The schema is not kept in the repository (it is OASIS's,
# not ours): it comes from Microsoft's SARIF Multitool package on npm
# (@microsoft/sarif-multitool-linux, MIT), checked against a pinned SHA-256,
# and only its sarif-2.1.0.json is kept, under target/sarif/. Needs only
# python3 (no Node toolchain). The llmsec-lint tests validate `llmsec lint
# --format sarif` output against it when LLMSEC_SARIF_SCHEMA names it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

VERSION=5.7.0
SHA256=27d8e3e96dde578a23b7c45035b8d741fece5731e2700aa068015b8c44d1514e
URL="https://registry.npmjs.org/@microsoft/sarif-multitool-linux/-/sarif-multitool-linux-$VERSION.tgz"
# An absolute path: the tests run in their crate's directory.
dir="${CARGO_TARGET_DIR:-$root/target}/sarif"
case "$dir" in
    /*) ;;
    *) dir="$root/$dir" ;;
esac
schema="$dir/sarif-2.1.0.json"

if [ ! -s "$schema" ]; then
    mkdir -p "$dir"
    python3 - "$URL" "$SHA256" "$schema" <<'PY' >&2
import hashlib, io, sys, tarfile, urllib.request

url, sha256, out = sys.argv[1:]
data = urllib.request.urlopen(url, timeout=120).read()
digest = hashlib.sha256(data).hexdigest()
if digest != sha256:
    sys.exit(f"scripts/sarif-schema.sh: {url} has SHA-256 {digest}, expected {sha256}")
with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
    member = tar.extractfile("package/sarif-2.1.0.json")
    if member is None:
        sys.exit("scripts/sarif-schema.sh: package/sarif-2.1.0.json is not in the package")
    body = member.read()
with open(out, "wb") as f:
    f.write(body)
print(f"fetched the SARIF 2.1.0 schema ({len(body)} bytes) from {url}")
PY
fi
echo "$schema"
