"""A throwaway real Prometheus (Debian package ``prometheus``) on loopback, for the metrics
tests: it scrapes the targets it is given and answers PromQL over its HTTP API.

The install step is ``scripts/services/prometheus.sh``; a machine without ``prometheus``
fails the tests that need it, it does not skip them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from realdb.ports import free_port


class PrometheusUnavailableError(RuntimeError):
    """``prometheus`` or ``promtool`` is not installed."""


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PrometheusUnavailableError(
            f"{name} not found: install it with scripts/services/prometheus.sh (as root)"
        )
    return path


class Prometheus:
    """One Prometheus scraping ``targets`` (``host:port``) every ``interval``, data in
    ``workdir``; a context manager (started on enter, stopped on exit)."""

    def __init__(self, workdir: Path, targets: list[str], interval: str = "1s") -> None:
        self.workdir = workdir
        self.targets = targets
        self.interval = interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Prometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        listed = ", ".join(f'"{t}"' for t in self.targets)
        config.write_text(
            f"global:\n  scrape_interval: {self.interval}\n  evaluation_interval: 15s\n"
            f"scrape_configs:\n  - job_name: exfil-detector\n"
            f"    static_configs:\n      - targets: [{listed}]\n"
        )
        log = (self.workdir / "prometheus.log").open("wb")
        self._proc = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                text = (self.workdir / "prometheus.log").read_text(errors="replace")
                raise RuntimeError(f"prometheus did not start: {text[-2000:]}")
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``'s ``data`` (raises with Prometheus's error otherwise)."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=30) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        if body.get("status") != "success":
            raise ValueError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result series."""
        return list(self.api("query", query=expr)["result"])

    def scraped(self) -> dict[str, str]:
        """Each target's health (``up``, ``down``, ``unknown``)."""
        active = self.api("targets")["activeTargets"]
        return {t["labels"]["instance"]: t["health"] for t in active}
