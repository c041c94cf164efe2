#!/usr/bin/env bash
# The project's whole check, as CI runs it (.ci/run) and as the README says:
# formatting, lints, tests, doc tests, and that the benches still compile.
#
# Needs a Rust toolchain (rustup, with rustfmt and clippy) and, optionally,
# cargo-nextest (falls back to `cargo test` without it), and CPython >= 3.9
# with venv and pip for the Python package (scripts/python.sh). The server and
# store tests run against a real PostgreSQL: scripts/postgres.sh installs it
# from Debian's packages when missing and starts a throwaway server on
# 127.0.0.1:55432 for the run (LLMSEC_PG_PORT to change it); likewise
# scripts/rabbitmq.sh and scripts/nats.sh start RabbitMQ and NATS for the
# broker sink tests. The S3 export tests run against s3rver, which
# scripts/s3.sh installs from npm under target/s3rver and starts on
# 127.0.0.1:54569 (LLMSEC_S3_PORT); needs npm.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() {
    printf '\n==> %s\n' "$*"
}

# rustfmt and clippy ship with rustup's default profile; add them when a
# minimal toolchain lacks them.
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        section "installing the ${component} component"
        rustup component add "${component}"
    fi
done

section "toolchain"
cargo --version
rustc --version

# One feature set for every cargo command here and in the scripts it runs
# (--all-features: PostgreSQL, Kafka, RabbitMQ, NATS), so they all share one
# build. The Kafka client builds librdkafka with cmake: scripts/build-deps.sh
# installs cmake and libcurl's headers when missing.
section "build dependencies: scripts/build-deps.sh (cmake for librdkafka)"
scripts/build-deps.sh

section "format: cargo fmt --all -- --check"
cargo fmt --all -- --check
# The fuzz crates are outside the workspace; check their sources directly.
rustfmt --edition 2024 --check crates/llm-security/fuzz/src/*.rs crates/llm-security/fuzz/fuzz_targets/*.rs crates/llm-sentinel/fuzz/fuzz_targets/*.rs crates/llmsec-lint/fuzz/fuzz_targets/*.rs

section "lint: cargo clippy --workspace --all-targets --all-features -- -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings

section "services: PostgreSQL for the store and server tests, s3rver for the S3 export tests"
pg_dir=$(mktemp -d /tmp/llmsec-pg.XXXXXX)
amqp_dir=$(mktemp -d /tmp/llmsec-rabbitmq.XXXXXX)
nats_dir=$(mktemp -d /tmp/llmsec-nats.XXXXXX)
s3_dir=$(mktemp -d /tmp/llmsec-s3.XXXXXX)
cleanup() {
    scripts/postgres.sh stop "$pg_dir" || true
    scripts/rabbitmq.sh stop "$amqp_dir" || true
    scripts/nats.sh stop "$nats_dir" || true
    scripts/s3.sh stop "$s3_dir" || true
    rm -rf "$pg_dir" "$amqp_dir" "$nats_dir" "$s3_dir"
}
trap cleanup EXIT
LLMSEC_TEST_POSTGRES_URL=$(scripts/postgres.sh start "$pg_dir")
export LLMSEC_TEST_POSTGRES_URL
echo "PostgreSQL at $LLMSEC_TEST_POSTGRES_URL"
# s3rver's one account (scripts/s3.sh); the server tests read it from these.
LLMSEC_TEST_S3_URL=$(scripts/s3.sh start "$s3_dir")
export LLMSEC_TEST_S3_URL LLMSEC_TEST_S3_ACCESS_KEY_ID=S3RVER LLMSEC_TEST_S3_SECRET_ACCESS_KEY=S3RVER
echo "S3 (s3rver) at $LLMSEC_TEST_S3_URL"

# The broker sinks' tests in llmsec-connect (features amqp and nats) publish
# to and read back from real servers, installed from Debian's packages when
# missing (rabbitmq-server, nats-server).
section "services: RabbitMQ and NATS (JetStream) for the broker sink tests"
LLMSEC_TEST_AMQP_URL=$(scripts/rabbitmq.sh start "$amqp_dir")
LLMSEC_TEST_NATS_URL=$(scripts/nats.sh start "$nats_dir")
LLMSEC_TEST_NATS_PASSWORD=$(cat "$nats_dir/password")
export LLMSEC_TEST_AMQP_URL LLMSEC_TEST_NATS_URL LLMSEC_TEST_NATS_PASSWORD
echo "RabbitMQ at $LLMSEC_TEST_AMQP_URL, NATS at $LLMSEC_TEST_NATS_URL (user llmsec)"

section "services: the SARIF 2.1.0 schema for the llmsec lint tests"
LLMSEC_SARIF_SCHEMA=$(scripts/sarif-schema.sh)
export LLMSEC_SARIF_SCHEMA
echo "SARIF schema at $LLMSEC_SARIF_SCHEMA"

section "services: the JUnit XML schema and xmllint for the llmsec redteam tests"
LLMSEC_JUNIT_SCHEMA=$(scripts/junit-schema.sh)
export LLMSEC_JUNIT_SCHEMA
echo "JUnit schema at $LLMSEC_JUNIT_SCHEMA"

if cargo nextest --version >/dev/null 2>&1; then
    section "test: cargo nextest run --workspace --all-features"
    cargo nextest run --workspace --all-features
else
    section "test: cargo test --workspace --all-features (cargo-nextest not installed)"
    cargo test --workspace --all-features
fi

section "doc tests: cargo test --workspace --doc --all-features"
cargo test --workspace --doc --all-features

section "benches compile: cargo bench -p llm-security -p llmsec-lint -p llmsec-redteam --all-features --no-run"
cargo bench -p llm-security -p llmsec-lint -p llmsec-redteam --all-features --no-run

# The Python package (bindings/python, its own Cargo workspace): maturin
# develop, its pytest suite, then the release abi3 wheel users get
# (`maturin build --release`, three to six minutes cold on two cores)
# installed into a fresh venv running the package README's example.
section "python package: scripts/python.sh (maturin develop, pytest, release abi3 wheel in a fresh venv)"
scripts/python.sh

# The Shield gateway with real clients: `llmsec gateway` in front of a mock
# upstream, driven by the official `openai` Python package and `curl -N`.
section "gateway end to end: scripts/gateway-e2e.sh (llmsec gateway, openai client, curl -N)"
scripts/gateway-e2e.sh

# The web dashboard in a real browser: Debian's Chromium driven by
# playwright-core against `llmsec serve`.
section "dashboard end to end: scripts/dashboard-e2e.sh (llmsec serve, Chromium via playwright-core)"
scripts/dashboard-e2e.sh

section "llmsecops demo: examples/llmsecops_demo/run.sh (lint, policy tests, serve + gateway + stand-in model, red team, logs scan)"
examples/llmsecops_demo/run.sh

section "prometheus end to end: scripts/prometheus-e2e.sh (promtool, a real Prometheus scraping llmsec serve, every dashboard query)"
scripts/prometheus-e2e.sh

section "kafka end to end: scripts/kafka-e2e.sh (Tansu broker, SIGKILL mid-stream, dead letters, sink, rebalance on PostgreSQL)"
scripts/kafka-e2e.sh

# The committed classifier must be what `llmsec train` builds from the
# datasets. `train --check` first compares the SHA-256 of each training file
# with the ones recorded in the model (naming any file that changed), then
# retrains (debug build, a few minutes) and compares byte for byte.
datasets=../shared/datasets
if [ -f "$datasets/prompts-dev-benign.jsonl" ]; then
    section "model: llmsec train --check crates/llm-security/model/classifier.bin"
    cargo run --quiet -p llmsec --all-features -- train \
        --data "$datasets/prompts-dev-injection.jsonl" \
        --data "$datasets/prompts-dev-jailbreak.jsonl" \
        --data "$datasets/prompts-dev-benign.jsonl" \
        --data crates/llm-security/training/extra.jsonl \
        --check crates/llm-security/model/classifier.bin
    section "model: llmsec train ner --check crates/llm-security/model/ner.bin"
    cargo run --quiet -p llmsec --all-features -- train ner --data "$datasets/outputs-dev-ner.jsonl" --check crates/llm-security/model/ner.bin
    section "model: llmsec train harmful --check crates/llm-security/model/harmful.bin"
    cargo run --quiet -p llmsec --all-features -- train harmful --data "$datasets/outputs-dev-harmful.jsonl" --check crates/llm-security/model/harmful.bin
else
    section "model reproduction skipped: $datasets not found (the check needs the training data beside the checkout)"
fi

section "all checks passed"
