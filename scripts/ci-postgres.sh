#!/usr/bin/env bash
# Prepares the PostgreSQL the accounts tests use (tests/postgres_accounts.rs): installs the
# server from Debian's packages when missing, starts its cluster, and creates the superuser
# role `ferry` (password `ferry`) the tests connect as, by default at
# postgres://ferry:ferry@127.0.0.1:5432/postgres (FERRY_TEST_POSTGRES overrides it). Each test
# then creates a database of its own. Safe to run again: every step checks first. Run as root.
#
# `scripts/ci-postgres.sh stop` stops the cluster again if (and only if) this script started
# it: `.ci/run` leaves the machine's services as it found them.
set -euo pipefail

me=ci-postgres
# Written when this script starts the cluster, so that `stop` knows it is ours to stop.
started_marker=/run/ferry-ci-postgres-started

if [[ "${1:-}" == stop ]]; then
  if [[ -f "$started_marker" ]]; then
    read -r version cluster < "$started_marker"
    echo "$me: stopping cluster $version/$cluster"
    pg_ctlcluster "$version" "$cluster" stop || true
    rm -f "$started_marker"
  fi
  exit 0
fi

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  echo "$me: installing postgresql"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# The first cluster the packages made (Debian 12: 15 main).
read -r version cluster _ < <(pg_lsclusters --no-header | head -n 1) || true
if [[ -z "${version:-}" ]]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  cluster=main
  echo "$me: creating cluster $version/$cluster"
  pg_createcluster "$version" "$cluster"
fi
if ! pg_lsclusters --no-header | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c && $4 == "online" { found = 1 } END { exit !found }'; then
  echo "$me: starting cluster $version/$cluster"
  pg_ctlcluster "$version" "$cluster" start
  echo "$version $cluster" > "$started_marker"
fi

for _ in $(seq 1 50); do
  runuser -u postgres -- pg_isready -q && break
  sleep 0.2
done
runuser -u postgres -- pg_isready

if ! runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'ferry'" | grep -q 1; then
  echo "$me: creating role ferry"
  runuser -u postgres -- psql -q -c "CREATE ROLE ferry LOGIN SUPERUSER PASSWORD 'ferry'"
fi
echo "$me: PostgreSQL $version ready at 127.0.0.1:5432 (role ferry)"
