#!/usr/bin/env bash
# Install MariaDB server (Debian 12 package, ships server_audit.so) for the real-database tests.
#
# Idempotent, non-interactive, run as root on Debian 12 (bookworm):
#   sudo scripts/services/mariadb.sh
#
# The tests (tests/realdb/mariadb.py) start their own throwaway mariadbd in a temp dir with
# server_audit loaded, so the Debian default instance is not needed: it is stopped and
# disabled if the package started it.
set -euo pipefail

source "$(dirname "$0")/apt.sh"
ensure_packages mariadb.sh mariadb-server

# Stop and disable the Debian default instance: the tests never use it.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl disable --now mariadb >/dev/null 2>&1 || true
elif service mariadb status >/dev/null 2>&1; then
    echo "mariadb.sh: stopping the default instance"
    service mariadb stop || true
fi
if command -v update-rc.d >/dev/null 2>&1 && [[ -e /etc/init.d/mariadb ]]; then
    update-rc.d mariadb disable >/dev/null 2>&1 || true
fi

MARIADBD="$(command -v mariadbd || echo /usr/sbin/mariadbd)"
PLUGIN_DIR="$("$MARIADBD" --no-defaults --verbose --help 2>/dev/null | awk '$1 == "plugin-dir" {print $2}')"
test -x "$MARIADBD"
command -v mariadb-install-db >/dev/null
test -f "${PLUGIN_DIR:-/usr/lib/mysql/plugin}/server_audit.so"
echo "mariadb.sh: OK: $("$MARIADBD" --version)"
echo "mariadb.sh: server_audit.so in ${PLUGIN_DIR} (the tests start their own server; none is left running)"
