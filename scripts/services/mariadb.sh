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

export DEBIAN_FRONTEND=noninteractive
PACKAGES=("mariadb-server")
# Another installer (postgres.sh) may hold the dpkg lock: wait for it rather than fail.
APT_OPTS=(-o DPkg::Lock::Timeout=600 -q)

if [[ "$(id -u)" -ne 0 ]]; then
    echo "mariadb.sh: must run as root (apt-get install)" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} > 0)); then
    # Only refresh the package lists when apt does not know a candidate yet (fresh image).
    if apt-cache policy "${missing[@]}" 2>/dev/null | grep -q "Candidate: (none)" \
        || [[ -z "$(apt-cache policy "${missing[@]}" 2>/dev/null)" ]]; then
        apt-get "${APT_OPTS[@]}" update
    fi
    echo "mariadb.sh: installing ${missing[*]}"
    # The package's postinst tries to start the default instance; without an init system
    # (containers) policy-rc.d forbids that, so no server is left running.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    trap '[[ $created_policy -eq 1 ]] && rm -f "$policy"' EXIT
    apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${missing[@]}"
else
    echo "mariadb.sh: ${PACKAGES[*]} already installed"
fi

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
