"""A newcomer's first minutes: ``kairos up``, paste the curl, post, list, history, restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from interfaces.consent import approve
from interfaces.serving import free_port
from sandbox.samples import jpeg_bytes, mp4_bytes

TOKEN = re.compile(r"API token\s+(ttp_[0-9a-f]{48})")
CURL = re.compile(
    r"^\s+(curl \S+/api/integrations -H \"Authorization: Bearer ttp_[0-9a-f]{48}\")$", re.M
)


class Up:
    def __init__(self, data_dir: Path, port: int, sandbox_port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS_")}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "interfaces",
                "up",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--sandbox-port",
                str(sandbox_port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def read_until(self, marker: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while marker not in self.output:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"kairos up did not print {marker!r}:\n{self.output}")
            time.sleep(0.05)
        return self.output

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def seed_media_steps(http: httpx.Client, tmp_path: Path, port: int) -> str:
    """Seed 001's "Media uploads" as a user types it: presign, curl PUT, reference the
    publicUrl; and the storage refusing an upload of another size or type."""
    image = tmp_path / "launch.jpg"
    image.write_bytes(jpeg_bytes(1200, 900))
    issued = http.post(
        "/api/media/presign",
        json={"filename": "launch.jpg", "contentType": "image/jpeg", "size": image.stat().st_size},
    ).json()
    assert issued["uploadUrl"].startswith(f"http://127.0.0.1:{port}/")

    def curl_put(content_type: str, path: Path) -> str:
        done = subprocess.run(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "PUT",
                issued["uploadUrl"],
                "-H",
                f"Content-Type: {content_type}",
                "--data-binary",
                f"@{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    bigger = tmp_path / "bigger.jpg"
    bigger.write_bytes(image.read_bytes() + b"\0")
    assert curl_put("image/jpeg", bigger) == "403"
    assert curl_put("image/png", image) == "403"
    assert curl_put("image/jpeg", image) == "200"
    account_id = x_account(http)["id"]
    internal = http.post(
        "/api/posts",
        json={
            "content": "x",
            "accountIds": [account_id],
            "mediaUrls": ["https://169.254.169.254/latest/meta-data/a.jpg"],
        },
    )
    assert internal.status_code == 400
    assert "169.254.169.254" in internal.json()["message"]
    created = http.post(
        "/api/posts",
        json={
            "content": "Launch day, with a picture",
            "accountIds": [account_id],
            "mediaUrls": [issued["publicUrl"]],
            "scheduledAt": (datetime.now(UTC) + timedelta(seconds=2)).isoformat(),
        },
    )
    assert created.status_code == 201, created.text
    post_id: str = created.json()["post"]["id"]
    return post_id


def x_account(http: httpx.Client, name: str = "kairos_demo") -> dict[str, Any]:
    integrations = http.get("/api/integrations").json()["integrations"]
    found: dict[str, Any] = next(
        i for i in integrations if i["provider"] == "twitter" and i["accountName"] == name
    )
    return found


def everywhere_steps(http: httpx.Client, sandbox_port: int) -> str:
    """Issue 6's "Done when": the sandbox Instagram, Page-linked Instagram and TikTok
    accounts kairos up connected, one post with a video to all of them and X, published on
    each with its remote URL; caption-only Instagram and video-less TikTok posts refused."""
    integrations = http.get("/api/integrations").json()["integrations"]
    connected = {(i["provider"], i["accountName"]): i for i in integrations}
    assert set(connected) >= {
        ("twitter", "kairos_demo"),
        ("instagram", "kairos_demo"),
        ("instagram-facebook", "kairos_demo_studio"),
        ("tiktok", "kairos_demo"),
    }, connected
    clip = mp4_bytes(1280, 720, 6_000)
    issued = http.post(
        "/api/media/presign",
        json={"filename": "launch.mp4", "contentType": "video/mp4", "size": len(clip)},
    ).json()
    put = httpx.put(issued["uploadUrl"], content=clip, headers={"Content-Type": "video/mp4"})
    assert put.status_code == 200, put.text
    refused = http.post(
        "/api/posts",
        json={
            "content": "Words only",
            "platforms": ["instagram"],
            "scheduledAt": "2030-01-01T09:00:00Z",
        },
    )
    assert refused.status_code == 400
    assert "Instagram" in refused.json()["message"]
    refused = http.post(
        "/api/posts",
        json={
            "content": "No video",
            "platforms": ["tiktok"],
            "scheduledAt": "2030-01-01T09:00:00Z",
        },
    )
    assert refused.status_code == 400
    assert "TikTok" in refused.json()["message"]
    assert "video" in refused.json()["message"]
    created = http.post(
        "/api/posts",
        json={
            "content": "Launch day everywhere #kairos",
            "platforms": ["instagram", "tiktok", "twitter"],
            "mediaUrls": [issued["publicUrl"]],
            "scheduledAt": (datetime.now(UTC) + timedelta(seconds=2)).isoformat(),
        },
    )
    assert created.status_code == 201, created.text
    post_id: str = created.json()["post"]["id"]
    wait(
        lambda: (
            http.get(f"/api/posts/{post_id}").json()["post"]["status"]
            in ("published", "failed", "partial")
        ),
        "the post to publish everywhere",
        timeout=90,
    )
    post = http.get(f"/api/posts/{post_id}").json()["post"]
    assert post["status"] == "published", post["results"]
    urls = {r["provider"]: r["url"] for r in post["results"]}
    assert urls["twitter"].startswith("https://x.com/i/web/status/")
    assert urls["instagram"].startswith("https://www.instagram.com/")
    assert urls["instagram-facebook"].startswith("https://www.instagram.com/")
    assert urls["tiktok"].startswith("https://www.tiktok.com/@kairos_demo/video/")
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    reels = httpx.get(f"{sandbox}/instagram/_sandbox/media").json()["by_account"]
    assert reels == {"kairos_demo": 1, "kairos_demo_studio": 1}
    videos = httpx.get(f"{sandbox}/tiktok/_sandbox/videos").json()
    assert (videos["count"], videos["duplicates"]) == (1, 0)
    return post_id


def seed_history_steps(data_dir: Path, port: int, sandbox_port: int) -> int:
    """Issue 7's history generator, between two runs of kairos up: weeks of posts to every
    sandbox account through the real services and simulators, on a simulated clock."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "interfaces",
            "sandbox",
            "seed-history",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--sandbox-port",
            str(sandbox_port),
            "--weeks",
            "2",
            "--per-day",
            "4",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not published" not in done.stdout, done.stdout
    found = re.search(r"Seeded (\d+) posts over 2 weeks, each to 4 accounts", done.stdout)
    assert found, done.stdout
    assert "tiktok              @kairos_demo         21:00 on Friday, Saturday" in done.stdout
    return int(found.group(1))


def optimal_times_steps(http: httpx.Client) -> None:
    """The seed's optimal-times curl per platform finds the hours the simulators favour
    (printed by seed-history), and next-optimal-time offers one of them."""

    def best(platform: str) -> list[int]:
        answer = http.get("/api/analytics/optimal-times", params={"platform": platform})
        assert answer.status_code == 200, answer.text
        recommendation = answer.json()["recommendation"]
        assert recommendation["dataPoints"] >= 10, recommendation
        return [h["hour"] for h in recommendation["bestHours"]]

    def near(hours: list[int], target: int) -> bool:
        return any(min(abs(h - target), 24 - abs(h - target)) <= 1 for h in hours)

    assert near(best("tiktok")[:1], 21)
    instagram = best("instagram")
    assert near(instagram, 11) or near(instagram, 12), instagram
    assert near(instagram, 19) or near(instagram, 20), instagram
    twitter = best("twitter")
    assert near(twitter, 8), twitter
    assert near(twitter, 17), twitter
    slot = http.get("/api/analytics/next-optimal-time", params={"platform": "tiktok"}).json()
    assert slot["nextOptimalTime"] is not None, slot
    assert abs(slot["nextOptimalTime"]["hour"] - 21) <= 2, slot


def wait(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def connect(http: httpx.Client, username: str) -> None:
    """The OAuth popup, as a browser would click through it."""
    url = http.get("/api/integrations/twitter/auth").json()["url"]
    assert http.get(approve(url, username=username)).status_code == 200


def account_lifecycle_steps(http: httpx.Client, sandbox_port: int, data_dir: Path) -> str:
    """Issue 5's walk-through: with short token lifetimes in the simulator the account
    refreshes by itself; revoking its refresh token expires it (a notification, an email);
    a scheduled post fails for that account only; reconnect and republish."""
    sandbox = f"http://127.0.0.1:{sandbox_port}/x/_sandbox"
    demo = "kairos_demo"
    httpx.post(f"{sandbox}/users/{demo}/tokens", json={"access_token_ttl": 4}).raise_for_status()
    connect(http, demo)  # reconnecting picks up the short-lived tokens
    connect(http, "kairos_other")
    demo_id, other_id = x_account(http, demo)["id"], x_account(http, "kairos_other")["id"]

    def refreshes() -> int:
        events = http.get(f"/api/integrations/{demo_id}/history").json()["events"]
        return sum(e["type"] == "TokenRefreshed" for e in events)

    wait(lambda: refreshes() >= 2, "the account to refresh by itself")
    post_id: str = http.post(
        "/api/posts",
        json={
            "content": "Before the account expired",
            "accountIds": [demo_id, other_id],
            "scheduledAt": (datetime.now(UTC) + timedelta(seconds=8)).isoformat(),
        },
    ).json()["post"]["id"]
    httpx.post(f"{sandbox}/users/{demo}/revoke", json={"tokens": "refresh"}).raise_for_status()
    wait(
        lambda: (
            http.get(f"/api/integrations/{demo_id}").json()["integration"]["status"] == "expired"
        ),
        "the account to expire",
    )
    notices = http.get("/api/notifications").json()["notifications"]
    assert any(n["kind"] == "connection_expired" for n in notices), notices
    wait(lambda: list((data_dir / "mail").glob("*.eml")), "the email")
    wait(
        lambda: http.get(f"/api/posts/{post_id}").json()["post"]["status"] == "partial",
        "the post to publish to the other account only",
    )
    results = {
        r["accountId"]: r for r in http.get(f"/api/posts/{post_id}").json()["post"]["results"]
    }
    assert results[other_id]["status"] == "published"
    assert "reconnect" in results[demo_id]["error"]["message"]

    httpx.delete(f"{sandbox}/users/{demo}/tokens").raise_for_status()
    connect(http, demo)
    assert http.post(f"/api/posts/{post_id}/republish").status_code == 200
    wait(
        lambda: http.get(f"/api/posts/{post_id}").json()["post"]["status"] == "published",
        "the republished post",
    )
    return post_id


@pytest.fixture
def ports() -> tuple[int, int]:
    return free_port(), free_port()


def test_kairos_up_from_nothing_to_a_listed_post_and_back_after_a_restart(
    tmp_path: Path, ports: tuple[int, int]
) -> None:
    port, sandbox_port = ports
    data_dir = tmp_path / ".kairos"
    up = Up(data_dir, port, sandbox_port)
    try:
        output = up.read_until("Press Ctrl+C to stop.")
        token = TOKEN.search(output)
        curl = CURL.search(output)
        assert token, output
        assert curl, output
        assert "Owner login" in output
        # The printed curl, run as printed.
        pasted = subprocess.run(
            curl.group(1) + " -s", shell=True, capture_output=True, text=True, check=True
        )
        assert '"provider":"twitter"' in pasted.stdout
        assert '"status":"connected"' in pasted.stdout
        http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token.group(1)}"},
            timeout=15,
        )
        account_id = x_account(http)["id"]
        created = http.post(
            "/api/posts",
            json={
                "content": "Launch day! 🚀",
                "accountIds": [account_id],
                "scheduledAt": "2030-07-01T15:00:00.000Z",
            },
        )
        assert created.status_code == 201, created.text
        post_id = created.json()["post"]["id"]
        assert [p["id"] for p in http.get("/api/posts").json()["posts"]] == [post_id]
        history = http.get(f"/api/posts/{post_id}/history").json()["events"]
        assert [e["type"] for e in history] == ["PostDrafted", "PostScheduled"]
        assert http.get("/readyz").status_code == 200
        # The in-process dispatcher and workers publish a post when its time comes.
        soon = datetime.now(UTC) + timedelta(seconds=2)
        thread = http.post(
            "/api/posts",
            json={
                "content": "A thread from kairos up",
                "thread": ["part two", "part three"],
                "platforms": ["twitter"],
                "scheduledAt": soon.isoformat(),
            },
        ).json()["post"]
        deadline = time.monotonic() + 20
        while (post := http.get(f"/api/posts/{thread['id']}").json()["post"])[
            "status"
        ] != "published":
            assert time.monotonic() < deadline, post
            time.sleep(0.2)
        assert post["results"][0]["url"].startswith("https://x.com/i/web/status/")
        posted = httpx.get(f"http://127.0.0.1:{sandbox_port}/x/_sandbox/tweets").json()
        assert [t["text"] for t in posted["data"]][-3:] == [
            "A thread from kairos up",
            "part two",
            "part three",
        ]
        assert posted["duplicates"] == 0
        media_post = seed_media_steps(http, tmp_path, port)
        deadline = time.monotonic() + 30
        while (post := http.get(f"/api/posts/{media_post}").json()["post"])[
            "status"
        ] != "published":
            assert time.monotonic() < deadline, post
            time.sleep(0.2)
        posted = httpx.get(f"http://127.0.0.1:{sandbox_port}/x/_sandbox/tweets").json()
        tweet = next(t for t in posted["data"] if t["text"] == "Launch day, with a picture")
        assert [m["media_type"] for m in tweet["media"]] == ["image/jpeg"]
        assert tweet["media"][0]["size"] == (tmp_path / "launch.jpg").stat().st_size
        everywhere_post = everywhere_steps(http, sandbox_port)
        lifecycle_post = account_lifecycle_steps(http, sandbox_port, data_dir)
    finally:
        assert up.stop() == 0, up.output

    seeded = seed_history_steps(data_dir, port, sandbox_port)
    again = Up(data_dir, port, sandbox_port)
    try:
        output = again.read_until("Press Ctrl+C to stop.")
        assert "Owner login" not in output  # the owner was created once
        token = TOKEN.search(output)
        assert token
        http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token.group(1)}"},
            timeout=15,
        )
        posts = http.get("/api/posts", params={"limit": 200}).json()["posts"]
        after_restart = {p["id"]: p["status"] for p in posts}
        assert {k: after_restart.get(k) for k in (post_id, thread["id"], media_post)} == {
            post_id: "scheduled",
            thread["id"]: "published",
            media_post: "published",
        }
        assert after_restart[everywhere_post] == after_restart[lifecycle_post] == "published"
        archive = [p for p in posts if p["content"].startswith("From the archive")]
        assert len(archive) == seeded
        assert {p["status"] for p in archive} == {"published"}
        optimal_times_steps(http)
        integrations = http.get("/api/integrations").json()["integrations"]
        assert len(integrations) == 5
        assert {i["status"] for i in integrations} == {"connected"}
    finally:
        assert again.stop() == 0, again.output
