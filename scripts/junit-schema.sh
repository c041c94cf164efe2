#!/usr/bin/env bash
# Prints the path of a JUnit XML schema, fetching it first when it is not
# cached, and makes sure `xmllint` (Debian's libxml2-utils) is there to
# validate against it. JUnit XML has no official schema; the one CI servers
# follow is the Jenkins xUnit plugin's junit-10.xsd (MIT, Gregory
# Boissinot). It is not kept in the repository: it comes from pytest's
# source distribution on PyPI (which carries it for its own JUnit tests),
# checked against a pinned SHA-256, and only the .xsd is kept, under
# target/junit/. The llmsec-redteam tests validate `llmsec redteam --junit`
# output against it with xmllint when LLMSEC_JUNIT_SCHEMA names it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

VERSION=8.3.4
SHA256=965370d062bce11e73868e0335abac31b4d3de0e82f4007408d242b4f8610761
URL="https://files.pythonhosted.org/packages/05/35/30e0d83068951d90a01852cb1cef56e5d8a09d20c7f511634cc2f7e0372a/pytest-$VERSION.tar.gz"
MEMBER="pytest-$VERSION/testing/example_scripts/junit-10.xsd"
# An absolute path: the tests run in their crate's directory.
dir="${CARGO_TARGET_DIR:-$root/target}/junit"
case "$dir" in
    /*) ;;
    *) dir="$root/$dir" ;;
esac
schema="$dir/junit-10.xsd"

if ! command -v xmllint >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "junit-schema.sh: installing xmllint (apt-get install libxml2-utils)" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q libxml2-utils >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null && apt-get install -y -q libxml2-utils >/dev/null; }
    else
        echo "junit-schema.sh: xmllint is missing (apt-get install libxml2-utils)" >&2
        exit 1
    fi
fi

if [ ! -s "$schema" ]; then
    mkdir -p "$dir"
    python3 - "$URL" "$SHA256" "$MEMBER" "$schema" <<'PY' >&2
import hashlib, io, sys, tarfile, urllib.request

url, sha256, member, out = sys.argv[1:]
data = urllib.request.urlopen(url, timeout=120).read()
digest = hashlib.sha256(data).hexdigest()
if digest != sha256:
    sys.exit(f"scripts/junit-schema.sh: {url} has SHA-256 {digest}, expected {sha256}")
with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
    f = tar.extractfile(member)
    if f is None:
        sys.exit(f"scripts/junit-schema.sh: {member} is not in the package")
    body = f.read()
with open(out, "wb") as f:
    f.write(body)
print(f"fetched the JUnit schema junit-10.xsd ({len(body)} bytes) from {url}")
PY
fi
echo "$schema"
