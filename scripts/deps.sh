#!/usr/bin/env bash
# deps.sh -- install the Debian 12 packages outbox-relay needs to build, test and run
# its demo.  (Java and Maven serve the tests only: they fetch and run Apache Kafka,
# tools/kafka_cluster.py; the relay itself needs neither.)  Idempotent and quiet when everything is present; needs root (or sudo)
# only when something is missing.  Used by the README's commands, CI and docker/.
#
#   scripts/deps.sh            build + test + demo dependencies
#   scripts/deps.sh --runtime  only what the daemon needs at run time
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev libpq-dev librdkafka-dev libyaml-dev
            libhiredis-dev redis-server libcurl4-openssl-dev libssl-dev libnats-dev nats-server
            librabbitmq-dev rabbitmq-server
            libcmocka-dev postgresql-15 postgresql-client-15 python3 python3-venv ca-certificates
            openjdk-17-jre-headless maven openssl gdb)
runtime_pkgs=(libpq5 librdkafka1 libyaml-0-2 libhiredis0.14 libcurl4 libssl3 libnats3.4 librabbitmq4
              ca-certificates)

pkgs=("${build_pkgs[@]}")
[ "${1:-}" = "--runtime" ] && pkgs=("${runtime_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# The broker packages (redis-server, nats-server, rabbitmq-server) would start system
# services listening on every interface; the tests start their own on loopback.  Keep
# the package scripts from starting anything while installing, unless the machine
# already has a policy of its own.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    trap '$SUDO rm -f "$policy"' EXIT
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
