#!/usr/bin/env bash
# Install Prometheus (Debian 12 package: prometheus, promtool) for the metrics tests.
#
# Idempotent, non-interactive, run as root on Debian 12 (bookworm):
#   sudo scripts/services/prometheus.sh
#
# The tests (tests/realdb/prometheus.py) start their own throwaway prometheus on loopback
# with a temp dir for its storage, so the Debian default instance is not needed: it is
# stopped and disabled if the package started it.
set -euo pipefail

source "$(dirname "$0")/apt.sh"
ensure_packages prometheus.sh prometheus

if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
elif service prometheus status >/dev/null 2>&1; then
    echo "prometheus.sh: stopping the default instance"
    service prometheus stop || true
fi
if command -v update-rc.d >/dev/null 2>&1 && [[ -e /etc/init.d/prometheus ]]; then
    update-rc.d prometheus disable >/dev/null 2>&1 || true
fi

command -v promtool >/dev/null
echo "prometheus.sh: OK: $(prometheus --version 2>&1 | head -n 1)"
