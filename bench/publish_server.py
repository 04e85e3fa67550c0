"""Entry points of the publishing benchmark's child processes (``multiprocessing`` spawn).

Each mirrors one production process of ``interfaces/cli.py``:

- ``run_worker``: ``kairos worker --threads N`` (Dramatiq actors on Redis);
- ``run_scheduler``: ``kairos scheduler`` (the due-work dispatcher);
- ``run_projector``: ``kairos projector`` (the read models);
- ``run_sandbox``: the sandbox X simulator under uvicorn (uvloop + httptools when installed),
  in its own process so its SQLite work and HTTP parsing do not share a GIL with anyone.

Every entry but the sandbox's sets ``ready`` once it is running, and stops on SIGTERM; the
benchmark starts them one after another (their start-up DDL must not run concurrently).
With a ``sample_path``, a low-rate stack sampler (``StackSampler``) runs inside the process
while SIGUSR1 has switched it on (SIGUSR2 switches it off), and writes its counts to that
path when the process stops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

PROJECT_DIRS = ("/application/", "/domain/", "/interfaces/", "/workers/", "/projections/")
SAMPLE_INTERVAL = 0.01


class StackSampler:
    """A poor man's py-spy: samples the Python stack of every thread doing Kairos work
    (Dramatiq's worker threads, the dispatcher thread) ``1 / SAMPLE_INTERVAL`` times a second.

    Each sample is counted under "<what the thread waits on or does> / <innermost Kairos
    function>", e.g. "PostgreSQL / KairosApplication.save". Wall-clock samples: an idle
    worker thread shows up as waiting for a message; CPU per process is measured separately.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.on = threading.Event()
        self.samples = 0
        self.kinds: Counter[str] = Counter()
        self.leaf: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)

    def start(self) -> StackSampler:
        signal.signal(signal.SIGUSR1, lambda *_: self.on.set())
        signal.signal(signal.SIGUSR2, lambda *_: self.on.clear())
        self._thread.start()
        return self

    @staticmethod
    def _where(frame: Any) -> str:
        code = frame.f_code
        name = code.co_filename
        for marker in (*PROJECT_DIRS, "/site-packages/", "/lib/python"):
            if marker in name:
                name = name.split(marker, 1)[1]
                if marker in PROJECT_DIRS:
                    name = marker.strip("/") + "/" + name
                break
        return f"{code.co_name} ({name}:{frame.f_lineno})"

    @staticmethod
    def _activity(filename: str) -> str:
        for marker, label in (
            ("psycopg_pool", "waiting for a pooled DB connection"),
            ("psycopg", "PostgreSQL"),
            ("httpcore", "X API call"),
            ("httpx", "X API call"),
            ("/redis/", "Redis"),
            ("queue.py", "idle: waiting for a message"),
            ("threading.py", "waiting on a thread primitive"),
        ):
            if marker in filename:
                return label
        return "running Python (or waiting for the GIL)"

    def _sample(self, frame: Any) -> None:
        activity = self._activity(frame.f_code.co_filename)
        step = "-"
        current: Any = frame
        while current is not None:
            if any(d in current.f_code.co_filename for d in PROJECT_DIRS):
                step = current.f_code.co_qualname
                break
            current = current.f_back
        self.samples += 1
        self.kinds[f"{activity} / {step}"] += 1
        self.leaf[self._where(frame)] += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.on.wait(0.2):
                continue
            time.sleep(SAMPLE_INTERVAL)
            watched = {
                t.ident
                for t in threading.enumerate()
                if type(t).__name__ == "WorkerThread" or t.name == "dispatcher"
            }
            for ident, frame in sys._current_frames().items():
                if ident in watched:
                    self._sample(frame)

    def dump(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self.path.write_text(
            json.dumps(
                {
                    "samples": self.samples,
                    "kinds": self.kinds.most_common(40),
                    "leaf": self.leaf.most_common(40),
                }
            )
        )


def _quiet_logging() -> None:
    """Also applies ``BENCH_SWITCH_INTERVAL`` (seconds; an experiment, not production)."""
    interval = os.environ.get("BENCH_SWITCH_INTERVAL")
    if interval:
        sys.setswitchinterval(float(interval))
    logging.basicConfig(level=logging.WARNING)
    for name in ("dramatiq", "httpx", "httpcore", "pgserver"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _wait_for_sigterm() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()


def _pipeline(settings_values: dict[str, Any]) -> tuple[Any, Any]:
    from interfaces.bootstrap import build
    from interfaces.config import Settings
    from workers.runtime import Pipeline

    settings = Settings(**settings_values)
    kairos = build(settings)
    pipeline = Pipeline(
        kairos.publishing, kairos.datastore, settings.redis_url, lease=settings.dispatch_lease
    )
    return kairos, pipeline


def run_worker(
    settings_values: dict[str, Any], threads: int, ready: Any, sample_path: str | None
) -> None:
    """``kairos worker --threads <threads>``."""
    _quiet_logging()
    sampler = StackSampler(Path(sample_path)).start() if sample_path else None
    kairos, pipeline = _pipeline(settings_values)
    pipeline.start_workers(threads)
    ready.set()
    try:
        _wait_for_sigterm()
    finally:
        if sampler is not None:
            sampler.dump()
        pipeline.stop()
        kairos.close()


def run_scheduler(settings_values: dict[str, Any], ready: Any, sample_path: str | None) -> None:
    """``kairos scheduler``."""
    _quiet_logging()
    sampler = StackSampler(Path(sample_path)).start() if sample_path else None
    kairos, pipeline = _pipeline(settings_values)
    pipeline.start_dispatcher()
    ready.set()
    try:
        _wait_for_sigterm()
    finally:
        if sampler is not None:
            sampler.dump()
        pipeline.stop()
        kairos.close()


def run_projector(settings_values: dict[str, Any], ready: Any) -> None:
    """``kairos projector``: every read model's runner, no HTTP."""
    from interfaces.bootstrap import build
    from interfaces.config import Settings

    _quiet_logging()
    kairos = build(Settings(**settings_values))
    kairos.start_projections()
    ready.set()
    try:
        _wait_for_sigterm()
    finally:
        kairos.close()


def run_sandbox(data_dir: str, port: int) -> None:
    """The sandbox platforms (X simulator) on ``port`` until SIGTERM."""
    import uvicorn

    from bench.server import uvicorn_options
    from sandbox.app import create_sandbox_app

    _quiet_logging()
    config = uvicorn.Config(
        create_sandbox_app(Path(data_dir)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        backlog=2048,
        timeout_keep_alive=75,
        **uvicorn_options(),  # type: ignore[arg-type]
    )
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()
