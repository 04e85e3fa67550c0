"""What TikTok does once it has a post's bytes: check them, then publish or fail.

Uploaded bytes (FILE_UPLOAD) are checked when the last chunk lands; pulled ones
(PULL_FROM_URL) are fetched over HTTP in a thread first, with no redirects followed. Either
way the outcome is decided at once and shows after ``processing_secs`` of sandbox time;
the public post id ``moderation_secs`` later. Checks use ``sandbox.x.sniff`` (container,
duration, frame size); frame rate is not read, so ``frame_rate_check_failed`` only comes
when forced through ``/_sandbox/fail_reasons``.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import httpx

from sandbox.tiktok.db import Outcome, Publish
from sandbox.tiktok.state import TikTokSim
from sandbox.x.sniff import Facts, inspect

VIDEO_TYPES = ("video/mp4", "video/quicktime", "video/webm")
PHOTO_TYPES = ("image/jpeg", "image/webp")
MIN_DURATION_MS = 3_000
API_MAX_DURATION_SEC = 600
MAX_PHOTO_BYTES = 20 * 1024 * 1024
PULL_TIMEOUT = 60.0


def video_problem(facts: Facts, max_duration_sec: int) -> str | None:
    """The ``fail_reason`` of a video TikTok refuses (reference §2.3 (g)), or ``None``."""
    if facts.detected not in VIDEO_TYPES or facts.unreadable is not None:
        return "file_format_check_failed"
    if facts.duration_ms is None:  # WebM: recognised, not inspected
        return None
    longest = min(max_duration_sec, API_MAX_DURATION_SEC) * 1000
    if not MIN_DURATION_MS <= facts.duration_ms <= longest:
        return "duration_check_failed"
    width, height = facts.width or 0, facts.height or 0
    if min(width, height) < 360 or max(width, height) > 4096:
        return "picture_size_check_failed"
    return None


def photo_problem(facts: Facts, size: int) -> str | None:
    """The ``fail_reason`` of a photo TikTok refuses: JPEG or WebP, 20 MB, up to 1080p."""
    if facts.detected not in PHOTO_TYPES or facts.unreadable is not None or size > MAX_PHOTO_BYTES:
        return "file_format_check_failed"
    width, height = facts.width or 0, facts.height or 0
    if min(width, height) > 1080 or max(width, height) > 1920:
        return "picture_size_check_failed"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def examine(sim: TikTokSim, publish: Publish, files: list[Path], max_duration_sec: int) -> Outcome:
    """Check the post's files and settle it; the files are deleted. Runs in a thread."""
    try:
        facts = [inspect(path) for path in files]
        sizes = [path.stat().st_size for path in files]
        sha256 = _sha256(files[0]) if files else None
    finally:
        for path in files:
            path.unlink(missing_ok=True)
    if publish.media_type == "PHOTO":
        problems = [photo_problem(fact, size) for fact, size in zip(facts, sizes, strict=True)]
        problem = next((found for found in problems if found), None)
    else:
        problem = video_problem(facts[0], max_duration_sec)
    problem = sim.next_fail_reason() or problem
    ready_at = sim.now() + sim.config.processing_secs
    cover = facts[0] if facts else Facts(None)
    outcome = Outcome(
        problem,
        ready_at,
        public_at=ready_at + sim.config.moderation_secs,
        duration_ms=cover.duration_ms,
        width=cover.width,
        height=cover.height,
        sha256=sha256,
    )
    sim.store.finish(publish.publish_id, outcome)
    return outcome


class Puller:
    """Fetches a PULL_FROM_URL post's files in a thread, then examines them."""

    def __init__(self, sim: TikTokSim, publish: Publish, max_duration_sec: int) -> None:
        self.sim = sim
        self.publish = publish
        self.max_duration_sec = max_duration_sec

    def start(self) -> None:
        name = f"tiktok-pull-{self.publish.publish_id}"
        self.sim.start_pull(threading.Thread(target=self.run, name=name, daemon=True))

    def run(self) -> None:
        publish, sim = self.publish, self.sim
        reason = "photo_pull_failed" if publish.media_type == "PHOTO" else "video_pull_failed"
        files: list[Path] = []
        received = 0
        try:
            with httpx.Client(follow_redirects=False, timeout=PULL_TIMEOUT) as http:
                for index, url in enumerate(publish.urls):
                    path = sim.media_dir / f"{publish.publish_id}.{index}.pull"
                    files.append(path)
                    received = self._download(http, url, path, received)
        except (httpx.HTTPError, httpx.InvalidURL, OSError, _PullFailed):
            for path in files:
                path.unlink(missing_ok=True)
            if not sim.closing.is_set():
                sim.store.finish(publish.publish_id, Outcome(reason, sim.now()))
            return
        if sim.closing.is_set():
            return
        sim.store.set_stage(publish.publish_id, "processing")
        examine(sim, publish, files, self.max_duration_sec)

    def _download(self, http: httpx.Client, url: str, path: Path, received: int) -> int:
        """Stream one file to ``path``, counting ``downloaded_bytes`` as it comes."""
        with http.stream("GET", url) as response, path.open("wb") as out:
            if response.status_code != 200:  # redirects included: TikTok follows none
                raise _PullFailed
            for block in response.iter_bytes(1 << 20):
                if self.sim.closing.is_set():
                    raise _PullFailed
                out.write(block)
                if self.sim.store.advance_received(
                    self.publish.publish_id, received, received + len(block)
                ):
                    received += len(block)
        return received


class _PullFailed(Exception):
    pass
