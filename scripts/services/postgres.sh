#!/usr/bin/env bash
# Install PostgreSQL 15 + pgaudit 1.7 (Debian 12 packages) for the real-database tests.
#
# Idempotent, non-interactive, run as root on Debian 12 (bookworm):
#   sudo scripts/services/postgres.sh
#
# The tests (tests/realdb/postgres.py) start their own throwaway cluster in a temp dir
# with pg_ctl, so the Debian default cluster "main" is not needed: it is stopped and
# disabled if the package created and started it.
set -euo pipefail

source "$(dirname "$0")/apt.sh"
PG_MAJOR=15
ensure_packages postgres.sh "postgresql-${PG_MAJOR}" "postgresql-${PG_MAJOR}-pgaudit"

# Stop and disable the Debian default cluster: the tests never use it.
if command -v pg_lsclusters >/dev/null 2>&1; then
    if pg_lsclusters --no-header 2>/dev/null | awk '$1 == "'"$PG_MAJOR"'" && $2 == "main" && $4 == "online"' | grep -q .; then
        echo "postgres.sh: stopping the default cluster ${PG_MAJOR}/main"
        pg_ctlcluster "$PG_MAJOR" main stop || true
    fi
    conf="/etc/postgresql/${PG_MAJOR}/main/start.conf"
    if [[ -f "$conf" ]] && grep -qx "auto" "$conf"; then
        # "manual": pg_ctlcluster still works, but nothing starts the cluster at boot.
        sed -i 's/^auto$/manual/' "$conf"
    fi
fi

BINDIR="/usr/lib/postgresql/${PG_MAJOR}/bin"
LIBDIR="$("$BINDIR/pg_config" --pkglibdir)"
test -x "$BINDIR/initdb" -a -x "$BINDIR/pg_ctl" -a -x "$BINDIR/postgres"
test -f "$LIBDIR/pgaudit.so"
echo "postgres.sh: OK: $("$BINDIR/postgres" --version), pgaudit $(dpkg-query -W -f='${Version}' "postgresql-${PG_MAJOR}-pgaudit")"
echo "postgres.sh: binaries in $BINDIR (the tests find them there; no server is left running)"
