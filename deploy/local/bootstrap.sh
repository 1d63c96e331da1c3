#!/usr/bin/env bash
# Makes sure NATS (with JetStream) and PostgreSQL run on this machine.
#
# Idempotent: a service that already answers is left alone. On a bare
# Debian 12 box it installs what is missing with apt and starts it:
#   - nats-server with the repo's nats.conf, store under $MNEMO_STATE_DIR/nats
#   - PostgreSQL (Debian's cluster), trusting loopback connections when this
#     script installed it, so the default MNEMO_DATABASE_URL works.
# Environment: MNEMO_STATE_DIR (default: <repo>/.mnemo), NATS_PORT (4222), PG_PORT (5432).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
state="${MNEMO_STATE_DIR:-$repo/.mnemo}"
nats_port="${NATS_PORT:-4222}"
pg_port="${PG_PORT:-5432}"
mkdir -p "$state"

say() { printf '[bootstrap] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root for: $*"; return 1; fi
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  say "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.1; done
  return 1
}

# --- NATS with JetStream -----------------------------------------------------
if port_open "$nats_port"; then
  say "NATS answers on 127.0.0.1:$nats_port"
else
  command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || apt_install nats-server
  nats_bin="$(command -v nats-server || echo /usr/sbin/nats-server)"
  mkdir -p "$state/nats"
  say "starting nats-server (store: $state/nats, log: $state/nats.log)"
  nohup "$nats_bin" -c "$repo/nats.conf" -p "$nats_port" -sd "$state/nats" \
    -l "$state/nats.log" >/dev/null 2>&1 &
  echo $! >"$state/nats.pid"
  wait_port "$nats_port" || { say "nats-server did not start; see $state/nats.log"; exit 1; }
fi

# --- PDF tools (the extractor runs poppler's pdftotext in a sandboxed child) ---
if ! command -v pdftotext >/dev/null || ! command -v pdfinfo >/dev/null; then
  apt_install poppler-utils
fi
command -v prlimit >/dev/null || apt_install util-linux
# The PDF readers' sandbox: namespaces and a minimal read-only view
# (mnemo_extractor::isolation); without it they get limits only.
command -v bwrap >/dev/null || apt_install bubblewrap
# The token tests make their identity provider's keys with openssl.
command -v openssl >/dev/null || apt_install openssl

# --- PostgreSQL ----------------------------------------------------------------
if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p "$pg_port"; then
  say "PostgreSQL answers on 127.0.0.1:$pg_port"
else
  installed_now=""
  if [ ! -d /etc/postgresql ] || [ -z "$(ls -A /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql
    installed_now=1
  fi
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  if [ -n "$installed_now" ]; then
    # A fresh local cluster: let loopback connect as any role without a
    # password (local development only; nothing listens beyond loopback).
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! as_root grep -q '^# mnemo: loopback trust' "$hba"; then
      as_root sed -i '1i # mnemo: loopback trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
  fi
  say "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$pg_port" && break; sleep 0.1; done
  pg_isready -q -h 127.0.0.1 -p "$pg_port" || { say "PostgreSQL did not start"; exit 1; }
fi

say "ready: NATS nats://127.0.0.1:$nats_port, PostgreSQL postgres://postgres@127.0.0.1:$pg_port/postgres"
