"""Progress buses: in-process (embedded) and Redis pub/sub (distributed)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from opslab.jobs.model import ProgressEvent

log = logging.getLogger("opslab.jobs")


class _LocalSubscription:
    def __init__(self, bus: LocalBus, job_id: str) -> None:
        self.bus, self.job_id = bus, job_id
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[ProgressEvent] = asyncio.Queue()

    async def get(self, timeout: float) -> ProgressEvent | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    async def close(self) -> None:
        self.bus._remove(self)


class LocalBus:
    """Thread-safe fan-out to asyncio subscribers in the same process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[_LocalSubscription]] = {}

    def publish(self, event: ProgressEvent) -> None:
        with self._lock:
            subs = list(self._subs.get(event.job_id, ()))
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub.queue.put_nowait, event)
            except RuntimeError:  # the subscriber's loop has closed
                self._remove(sub)

    def subscribe(self, job_id: str) -> _LocalSubscription:
        sub = _LocalSubscription(self, job_id)
        with self._lock:
            self._subs.setdefault(job_id, set()).add(sub)
        return sub

    def _remove(self, sub: _LocalSubscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.job_id)
            if subs:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.job_id]


def channel(job_id: str) -> str:
    return f"opslab:jobs:{job_id}"


class _RedisSubscription:
    def __init__(self, url: str, job_id: str) -> None:
        import redis.asyncio as aioredis

        self.client: Any = aioredis.Redis.from_url(url, socket_connect_timeout=5)
        self.pubsub: Any = self.client.pubsub(ignore_subscribe_messages=True)
        self.job_id = job_id
        self._subscribed = False

    async def get(self, timeout: float) -> ProgressEvent | None:
        try:
            if not self._subscribed:
                await self.pubsub.subscribe(channel(self.job_id))
                self._subscribed = True
            msg = await self.pubsub.get_message(timeout=timeout)
        except Exception as exc:  # Redis gone: the stream falls back to polling the database
            log.warning("progress subscription for %s lost: %s", self.job_id, exc)
            await asyncio.sleep(timeout)
            return None
        if msg is None:
            return None
        return ProgressEvent.model_validate_json(msg["data"])

    async def close(self) -> None:
        try:
            await self.pubsub.aclose()
            await self.client.aclose()
        except Exception:  # noqa: BLE001 - closing a dead connection is not an error worth raising
            pass


class RedisBus:
    """Redis pub/sub: workers on any machine publish; every API process's SSE clients receive."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)

    def publish(self, event: ProgressEvent) -> None:
        try:
            self.client.publish(channel(event.job_id), event.model_dump_json())
        except Exception as exc:  # noqa: BLE001 - progress is also persisted; a lost event is not fatal
            log.warning("could not publish progress of %s: %s", event.job_id, exc)

    def subscribe(self, job_id: str) -> _RedisSubscription:
        return _RedisSubscription(self.url, job_id)
