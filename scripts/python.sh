#!/usr/bin/env bash
# The Python package (bindings/python, `pip install llm-security`, import
# `llm_security`): checks the bindings' Rust code (rustfmt, clippy), builds
# the package into a virtual environment with `maturin develop`, runs its
# pytest suite and mypy's stubtest (the type stubs match the module), then
# builds the abi3 wheel users get, installs it into a fresh virtual
# environment and runs the package README's quick-start example there (it
# must print `block`).
#
# Needs the Rust toolchain and CPython >= 3.9 with venv and pip (PYTHON to
# pick the interpreter, default python3); maturin, pytest, mypy and, on
# Python >= 3.11, langchain-core, openai and llama-index-core (the
# integrations' tests) are installed from PyPI at pinned versions into
# $CARGO_TARGET_DIR/py-venv (default target/py-venv), which is kept and reused between runs. The
# bindings are their own Cargo workspace and share the target directory.
#   LLMSEC_WHEEL_PROFILE=release|dev   cargo profile of the wheel (default release)
#   LLMSEC_WHEEL_PYTHONS="python3.9 ..."  also run the quick start with the wheel
#                                         under these interpreters
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

MATURIN_VERSION=1.16.0
PYTEST_VERSION=9.2.0
MYPY_VERSION=2.4.1
# The integrations' tests; langchain-core 1.x needs Python >= 3.11.
LANGCHAIN_CORE_VERSION=1.8.3
OPENAI_VERSION=2.54.0
# Installs without downloading models: the tests use its MockEmbedding and
# MockLLM, and it ships the tokenizer and NLTK data it needs.
LLAMA_INDEX_CORE_VERSION=0.14.25

section() {
    printf '\n==> %s\n' "$*"
}

fail() {
    printf '\nscripts/python.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
python=${PYTHON:-python3}
profile=${LLMSEC_WHEEL_PROFILE:-release}
crate="$root/bindings/python"
venv="$CARGO_TARGET_DIR/py-venv"
wheels="$CARGO_TARGET_DIR/py-wheels"
fresh="$CARGO_TARGET_DIR/py-wheel-venv"
started=$SECONDS

case "$profile" in
    release | dev) ;;
    *) fail "LLMSEC_WHEEL_PROFILE must be release or dev, not '$profile'" ;;
esac

section "python: $python"
command -v "$python" >/dev/null || fail "'$python' not found: the Python package needs CPython >= 3.9 (set PYTHON)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
    fail "$("$python" --version 2>&1) is too old: the Python package needs CPython >= 3.9"
"$python" --version

# A kept venv made by another interpreter version is made again.
version_of() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'
}
if [ -x "$venv/bin/python" ] && [ "$(version_of "$venv/bin/python")" != "$(version_of "$python")" ]; then
    section "virtual environment: $venv was made by another Python version, making it again"
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    section "virtual environment: creating $venv"
    "$python" -m venv "$venv" || fail "cannot create a virtual environment (on Debian: apt-get install python3-venv)"
else
    section "virtual environment: reusing $venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "maturin==$MATURIN_VERSION" "pytest==$PYTEST_VERSION" "mypy==$MYPY_VERSION" ||
    fail "pip could not install maturin==$MATURIN_VERSION, pytest==$PYTEST_VERSION and mypy==$MYPY_VERSION into $venv"
if "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "langchain-core==$LANGCHAIN_CORE_VERSION" "openai==$OPENAI_VERSION" \
        "llama-index-core==$LLAMA_INDEX_CORE_VERSION" ||
        fail "pip could not install langchain-core==$LANGCHAIN_CORE_VERSION, openai==$OPENAI_VERSION and llama-index-core==$LLAMA_INDEX_CORE_VERSION into $venv"
    stubtest_modules=(llm_security)
else
    echo "Python < 3.11: langchain-core $LANGCHAIN_CORE_VERSION needs 3.11, so the integrations (LangChain, OpenAI, LlamaIndex) are not tested"
    stubtest_modules=(llm_security._native)
fi

# --locked everywhere: bindings/python/Cargo.lock is committed. When the
# engine gains a dependency, `cargo check --manifest-path
# bindings/python/Cargo.toml` updates that lockfile; commit the change.
lock_hint="if the engine's dependencies changed, run 'cargo check --manifest-path bindings/python/Cargo.toml' and commit bindings/python/Cargo.lock"

section "format and lint: cargo fmt --check, cargo clippy -D warnings (bindings/python)"
(cd "$crate" && cargo fmt --check) || fail "bindings/python is not rustfmt-clean: run 'cargo fmt' in bindings/python"
(cd "$crate" && PYO3_BUILD_EXTENSION_MODULE=1 cargo clippy --locked --all-targets -- -D warnings) || fail "clippy found problems in bindings/python ($lock_hint)"

section "build: maturin develop (debug) into $venv"
(cd "$crate" && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" maturin develop --locked) ||
    fail "maturin develop could not build or install the package ($lock_hint)"

section "test: pytest bindings/python/tests"
(cd "$crate" && "$venv/bin/python" -m pytest -q -p no:cacheprovider tests) || fail "the Python package's tests failed"

section "types: mypy stubtest llm_security (the stubs match the native module)"
(cd "$crate" && "$venv/bin/python" -m mypy.stubtest --mypy-config-file pyproject.toml "${stubtest_modules[@]}") ||
    fail "python/llm_security/_native.pyi or __init__.py disagrees with the built module (see above)"

section "wheel: maturin build --profile $profile (abi3, CPython >= 3.9)"
rm -rf "$wheels"
(cd "$crate" && "$venv/bin/maturin" build --locked --profile "$profile" --out "$wheels") ||
    fail "maturin could not build the wheel ($lock_hint)"
wheel=$(find "$wheels" -name 'llm_security-*-cp39-abi3-*.whl' | head -n 1)
[ -n "$wheel" ] || fail "no abi3 wheel (llm_security-*-cp39-abi3-*.whl) in $wheels: $(ls "$wheels")"
echo "$wheel ($(du -h "$wheel" | cut -f1))"

section "wheel: install into a fresh virtual environment and run the README's quick start"
rm -rf "$fresh"
"$python" -m venv "$fresh" || fail "cannot create the virtual environment $fresh"
"$fresh/bin/python" -m pip install --quiet --disable-pip-version-check --no-index "$wheel" ||
    fail "pip could not install $wheel into a fresh virtual environment"
# The first ```python block of the package README, three lines.
example=$(awk '/^```python$/ { inside = 1; next } inside && /^```$/ { exit } inside' "$crate/README.md")
[ -n "$example" ] || fail "no \`\`\`python block in bindings/python/README.md"
printf '%s\n' "$example" | sed 's/^/    /'
# Run from an empty directory, so only the installed wheel can be imported.
out=$(cd "$fresh" && "$fresh/bin/python" -c "$example") || fail "the README's quick start failed with the installed wheel"
[ "$out" = "block" ] || fail "the README's quick start printed '$out' with the installed wheel, expected 'block'"
echo "printed: $out"

# Optional: the same wheel under other interpreters (one abi3 wheel serves
# CPython >= 3.9), e.g. LLMSEC_WHEEL_PYTHONS="python3.9 python3.13".
for other in ${LLMSEC_WHEEL_PYTHONS:-}; do
    section "wheel: the README's quick start under $other"
    command -v "$other" >/dev/null || fail "LLMSEC_WHEEL_PYTHONS names '$other', which is not on PATH"
    rm -rf "$fresh-other"
    "$other" -m venv "$fresh-other" || fail "cannot create a virtual environment with $other"
    "$fresh-other/bin/python" -m pip install --quiet --disable-pip-version-check --no-index "$wheel" ||
        fail "pip could not install $wheel with $other"
    out=$(cd "$fresh-other" && "$fresh-other/bin/python" -c "$example") || fail "the README's quick start failed under $other"
    [ "$out" = "block" ] || fail "the README's quick start printed '$out' under $other, expected 'block'"
    echo "$("$fresh-other/bin/python" --version): printed $out"
    rm -rf "$fresh-other"
done

section "python package: all checks passed in $((SECONDS - started)) s"
