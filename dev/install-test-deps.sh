#!/usr/bin/env bash
# Installs the outside parts the integration tests talk to, idempotently: each step checks first
# and returns at once when the part is already there.
#   - Tansu, a Kafka-compatible broker in Rust (a real broker over TCP)
#   - kcat, from Debian (an outside consumer)
#   - tmux, from Debian (a real terminal, for progress bars and dashboards)
#   - confluent-kafka, the Python client (an outside consumer, and the Python baseline), with its
#     Avro support (fastavro and the schema registry client: the `avro` extra)
#   - Prometheus, from Debian (a real server that scrapes `sim --metrics`)
#   - prometheus_client, the Python library (its parser checks the text exposition)
#   - Chromium, from Debian (a real browser that opens `sim report`'s page, headless)
set -euo pipefail

log() { printf 'install-test-deps: %s\n' "$*" >&2; }

# Runs a command as root: directly, or through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs Debian packages, without what they only recommend (services, desktop integration).
apt_install() {
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_tansu() {
  if command -v tansu >/dev/null 2>&1 || [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ]; then
    log "tansu present"
    return
  fi
  log "installing tansu (cargo install, about 10 minutes on 2 cores, once per machine)"
  cargo install tansu --locked --features dynostore
}

install_kcat() {
  if command -v kcat >/dev/null 2>&1; then
    log "kcat present"
    return
  fi
  log "installing kcat from Debian"
  apt_install kcat
}

install_tmux() {
  if command -v tmux >/dev/null 2>&1; then
    log "tmux present"
    return
  fi
  log "installing tmux from Debian (a real terminal for the progress bar and dashboard tests)"
  apt_install tmux
}

install_confluent_kafka() {
  if python3 -c 'import confluent_kafka' >/dev/null 2>&1; then
    log "confluent-kafka present"
    return
  fi
  log "installing confluent-kafka from PyPI"
  python3 -m pip install --quiet 'confluent-kafka>=2.6'
}

install_confluent_kafka_avro() {
  if python3 -c 'import fastavro; from confluent_kafka.schema_registry.avro import AvroDeserializer' >/dev/null 2>&1; then
    log "confluent-kafka Avro support present"
    return
  fi
  log "installing confluent-kafka's Avro support (fastavro, the registry client) from PyPI"
  python3 -m pip install --quiet 'confluent-kafka[avro]>=2.6'
}

install_prometheus() {
  if prometheus --version >/dev/null 2>&1; then
    log "prometheus present"
    return
  fi
  log "installing prometheus from Debian (the server only: tests start their own)"
  # The package's postinst starts a prometheus service through invoke-rc.d. The tests start their
  # own server on a free port, and in a container without systemd the init script would leave a
  # stray daemon on :9090 (or fail the install). A policy-rc.d that answers 101 ("action
  # forbidden") tells invoke-rc.d to skip it; one is put in place only for this install when the
  # machine has none, and removed afterwards.
  local policy=/usr/sbin/policy-rc.d added_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    added_policy=1
  fi
  # Not prometheus-node-exporter (a recommendation): another service the tests do not use.
  apt_install prometheus
  [ -z "$added_policy" ] || as_root rm -f "$policy"
  prometheus --version >/dev/null 2>&1 || {
    log "prometheus was installed but \`prometheus --version\` fails"
    exit 1
  }
}

install_prometheus_client() {
  if python3 -c 'import prometheus_client' >/dev/null 2>&1; then
    log "prometheus_client present"
    return
  fi
  log "installing prometheus_client from PyPI"
  python3 -m pip install --quiet prometheus_client
}

install_chromium() {
  if command -v chromium >/dev/null 2>&1; then
    log "chromium present"
    return
  fi
  log "installing chromium from Debian (headless use only)"
  apt_install chromium
  chromium --version >/dev/null 2>&1 || {
    log "chromium was installed but \`chromium --version\` fails"
    exit 1
  }
}

install_kcat
install_tmux
install_confluent_kafka
install_confluent_kafka_avro
install_prometheus
install_prometheus_client
install_chromium
install_tansu
