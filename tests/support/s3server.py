"""LocalStack's S3 on loopback, from its own locked environment in ``tools/s3server``: the
real S3-compatible server the storage tests and the media benchmark run against. Signature
checking is on, so it refuses a presigned PUT of another Content-Type or size."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from interfaces.serving import free_port

PROJECT = Path(__file__).resolve().parents[2] / "tools" / "s3server"
ACCESS_KEY_ID = SECRET_ACCESS_KEY = "test"


class LocalS3:
    """Started at construction; ``wait()`` until it answers; ``stop()`` ends it."""

    def __init__(self, work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log_path = work / "server.log"
        env = {
            **os.environ,
            "SERVICES": "s3",
            "GATEWAY_LISTEN": f"127.0.0.1:{port}",
            "S3_SKIP_SIGNATURE_VALIDATION": "0",
            "DNS_ADDRESS": "0",
            "EAGER_SERVICE_LOADING": "1",
            "LOCALSTACK_VOLUME_DIR": str(work),
            "TMPDIR": str(work),
        }
        env.pop("VIRTUAL_ENV", None)
        # ``uv run`` names itself in $UV; the tool installs outside PATH on a bare machine.
        uv = os.environ.get("UV") or shutil.which("uv") or "uv"
        self._log = self._log_path.open("wb")
        # Its own session, so stopping it reaches LocalStack behind ``uv run``.
        self._process = subprocess.Popen(
            [
                uv,
                "run",
                "--frozen",
                "--project",
                str(PROJECT),
                "python",
                "-m",
                "localstack.runtime.main",
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT,
            start_new_session=True,
        )

    def wait(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/_localstack/health", timeout=1).status_code == 200:
                    return
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the S3 server did not start; see {self._log_path}:\n"
                    + self._log_path.read_text()[-3000:]
                )
            time.sleep(0.25)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=5)
        self._log.close()


@contextlib.contextmanager
def local_s3(work: Path) -> Iterator[LocalS3]:
    server = LocalS3(work)
    try:
        yield server
    finally:
        server.stop()
