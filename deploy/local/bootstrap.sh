#!/usr/bin/env bash
# Makes sure NATS (with JetStream) and PostgreSQL run on this machine.
#
# Idempotent: what already runs is left alone. On a bare Debian 12 box it
# installs what is missing with apt and starts it:
#   - mnemo's own nats-server, secured by the repo's nats.conf: one nkey
#     per service role, made by `mnemo nats credentials` into
#     $MNEMO_STATE_DIR/nats-creds (0700; seeds 0600), no anonymous access;
#     store under $MNEMO_STATE_DIR/nats. It takes 127.0.0.1:4222 when that
#     is free, else the next free port from 4322 (a machine's own, open
#     NATS is never used). Restarted when nats.conf or a key changed.
#   - PostgreSQL (Debian's cluster), trusting loopback connections when this
#     script installed it; a least-privilege role and database `mnemo` for
#     the services (the superuser is used here only, to create them).
# Writes $MNEMO_STATE_DIR/services.env (MNEMO_NATS_URL, MNEMO_NATS_CREDS,
# MNEMO_KEY_FILE: the key file, made once under $MNEMO_STATE_DIR/keys),
# MNEMO_DATABASE_URL): source it before `mnemo serve` or an operator command.
# Environment: MNEMO_STATE_DIR (default: <repo>/.mnemo), NATS_PORT (pins
# the port), PG_PORT (5432), MNEMO_BIN (the mnemo binary that makes the
# credentials; default: a debug build, made here if missing).
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

# --- NATS with JetStream, secured ------------------------------------------------
mnemo_bin="${MNEMO_BIN:-}"
if [ -z "$mnemo_bin" ]; then
  mnemo_bin="${CARGO_TARGET_DIR:-$repo/target}/debug/mnemo"
  if [ ! -x "$mnemo_bin" ]; then
    say "building mnemo (it makes the NATS credentials)"
    (cd "$repo" && cargo build --locked -q -p mnemo)
  fi
fi
creds="$state/nats-creds"
keys="$("$mnemo_bin" nats credentials --dir "$creds")"
# The deployment's key file: every learner's data key is wrapped under it
# (docs/security.md, *Erasing a learner*). Made once, never replaced.
key_file="$state/keys/master.key"
"$mnemo_bin" keys init "$key_file" >/dev/null
# What the running server was started from: restart it when this changes.
fingerprint="$(printf '%s\n' "$keys" | cat - "$repo/nats.conf" | sha256sum | cut -d' ' -f1)"

nats_running() {
  [ -f "$state/nats.pid" ] && kill -0 "$(cat "$state/nats.pid")" 2>/dev/null \
    && [ -f "$state/nats.port" ] && port_open "$(cat "$state/nats.port")"
}

if nats_running && [ "$(cat "$state/nats.fingerprint" 2>/dev/null)" != "$fingerprint" ]; then
  say "nats.conf or a credential changed: restarting mnemo's nats-server"
  kill "$(cat "$state/nats.pid")"
  for _ in $(seq 1 100); do kill -0 "$(cat "$state/nats.pid")" 2>/dev/null || break; sleep 0.1; done
fi
if nats_running; then
  nats_port="$(cat "$state/nats.port")"
  say "mnemo's nats-server answers on 127.0.0.1:$nats_port"
else
  command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || apt_install nats-server
  nats_bin="$(command -v nats-server || echo /usr/sbin/nats-server)"
  nats_port="${NATS_PORT:-}"
  if [ -z "$nats_port" ]; then
    for p in 4222 $(seq 4322 4399); do
      if ! port_open "$p" && ! port_open "$((p + 4000))"; then nats_port="$p"; break; fi
    done
  fi
  [ -n "$nats_port" ] || { say "no free port for nats-server"; exit 1; }
  if port_open "$nats_port"; then say "port $nats_port is taken"; exit 1; fi
  mkdir -p "$state/nats"
  say "starting mnemo's nats-server on 127.0.0.1:$nats_port (store: $state/nats, log: $state/nats.log)"
  # A clean environment: the roles' public keys and nothing else.
  # shellcheck disable=SC2086
  nohup env -i PATH="$PATH" $keys "$nats_bin" -c "$repo/nats.conf" -p "$nats_port" \
    -m "$((nats_port + 4000))" -sd "$state/nats" -l "$state/nats.log" >/dev/null 2>&1 &
  echo $! >"$state/nats.pid"
  echo "$nats_port" >"$state/nats.port"
  echo "$fingerprint" >"$state/nats.fingerprint"
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

# --- mnemo's PostgreSQL role: least privilege ------------------------------------
# The services connect as role `mnemo` (no superuser, no CREATEDB or
# CREATEROLE) to database `mnemo`, where it may create the schemas it then
# owns (a namespace's, and a rebuild's scratch schemas) and nothing else;
# no other role's data is reachable and no superuser feature (COPY TO
# PROGRAM, ALTER SYSTEM, untrusted languages) is. Local connections
# authenticate as pg_hba.conf says (trust on loopback when this script
# installed PostgreSQL); elsewhere give the role a password (docs/security.md).
pg_role="${MNEMO_PG_ROLE:-mnemo}"
pg_db="${MNEMO_PG_DATABASE:-mnemo}"
psql_admin() { psql -h 127.0.0.1 -p "$pg_port" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
psql_admin -d postgres -v role="$pg_role" -v db="$pg_db" <<'SQL' >/dev/null
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', :'role')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('CREATE DATABASE %I', :'db')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
SELECT format('GRANT CONNECT, CREATE, TEMPORARY ON DATABASE %I TO %I', :'db', :'role') \gexec
SQL
psql_admin -d "$pg_db" -c 'REVOKE ALL ON SCHEMA public FROM PUBLIC' >/dev/null
database_url="postgres://$pg_role@127.0.0.1:$pg_port/$pg_db"

cat >"$state/services.env" <<EOF
MNEMO_NATS_URL=nats://127.0.0.1:$nats_port
MNEMO_NATS_CREDS=$creds
MNEMO_KEY_FILE=$key_file
MNEMO_DATABASE_URL=$database_url
EOF

say "ready: NATS nats://127.0.0.1:$nats_port (credentials: $creds), PostgreSQL $database_url; settings in $state/services.env"
