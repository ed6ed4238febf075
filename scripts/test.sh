#!/usr/bin/env bash
# Set up, install the real servers the tests drive (PostgreSQL 15 + pgaudit, MariaDB with
# server_audit and Prometheus from Debian packages; the Apache Kafka broker's jars from
# Maven Central), lint, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/services/postgres.sh
bash scripts/services/mariadb.sh
bash scripts/services/kafka.sh
bash scripts/services/prometheus.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
