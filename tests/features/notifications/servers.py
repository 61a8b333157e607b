"""Real server processes and a small Server-Sent Events reader for the live tests."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.config import ROOT_DIR
from tests.conftest import SECRET_KEY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, wait, return the exit code (kill and raise if it hangs)."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"server did not stop: {self.log.read_text()[-2000:]}") from None


def start_server(
    db_path: Path,
    workdir: Path,
    name: str,
    *,
    port: int | None = None,
    factory: str = "app:create_app",
    **env_extra: str,
) -> Server:
    """Start ``uvicorn <factory>`` on ``db_path`` (as tests/e2e/conftest.py does), on
    ``port`` (a restart on the same address) or a free one."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "APP_ENV": "test",
        "APP_URL": url,
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
        "STORAGE_DIR": str(workdir / "assets"),
        **env_extra,
    }
    log = workdir / f"{name}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", factory, "--factory", "--app-dir", "src",
         "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--no-proxy-headers"],
        cwd=ROOT_DIR,
        env=env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 90  # generous: a busy machine starts Python slowly
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return Server(process, url, log)
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)


@dataclass
class Stream:
    """Events received on one open ``/notifications/stream`` connection."""

    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    comments: list[str] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def next(self, timeout: float) -> dict:
        return await asyncio.wait_for(self.events.get(), timeout)


async def _read(response: httpx.Response, stream: Stream) -> None:
    fields: dict[str, str] = {}
    try:
        async for line in response.aiter_lines():
            if line == "":
                if fields.get("data"):
                    await stream.events.put(
                        {"id": fields.get("id"), "event": fields.get("event"),
                         "data": json.loads(fields["data"])}
                    )  # fmt: skip
                fields = {}
            elif line.startswith(":"):
                stream.comments.append(line[1:].strip())
            else:
                key, _, value = line.partition(":")
                fields[key] = value[1:] if value.startswith(" ") else value
    except httpx.HTTPError:
        pass
    finally:
        stream.ended.set()


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    base_url: str,
    headers: dict[str, str] | None = None,
    query: str = "",
) -> AsyncIterator[Stream]:
    """Open the event stream on ``base_url`` (plus ``query``, e.g. ``?last_event_id=…``) with
    ``client``'s cookies; wait until connected."""
    stream = Stream()
    async with client.stream(
        "GET", f"{base_url}/notifications/stream{query}", headers=headers or {}, timeout=None
    ) as response:
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        task = asyncio.create_task(_read(response, stream))
        try:
            while "connected" not in stream.comments:
                await asyncio.sleep(0.01)
            yield stream
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
