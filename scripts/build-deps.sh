#!/usr/bin/env bash
# What the workspace's full feature set needs besides the Rust toolchain:
# the Kafka source and sink (feature `kafka`, on in `--all-features`) build
# librdkafka from source with cmake. Installs cmake and libcurl's headers
# from Debian's packages when they are missing (as root with apt-get);
# otherwise says what to install. The default build (`cargo run -p llmsec
# -- serve`) needs none of this.
set -euo pipefail

have_curl_headers() {
    [ -e /usr/include/curl/curl.h ] || [ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] ||
        [ -e /usr/include/aarch64-linux-gnu/curl/curl.h ]
}

if command -v cmake >/dev/null && have_curl_headers; then
    exit 0
fi
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "build-deps.sh: installing cmake and libcurl4-openssl-dev (apt-get) for librdkafka" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q cmake libcurl4-openssl-dev >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q cmake libcurl4-openssl-dev >/dev/null; }
else
    echo "build-deps.sh: the kafka feature needs cmake and libcurl's headers (apt-get install cmake libcurl4-openssl-dev)" >&2
    exit 1
fi
