"""Harm from outside the chaos server, for drills and benchmarks: a slow TCP path (``DelayProxy``) and a
busy machine (``busy_cpus``). Neither goes through opslab's own fault injection."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Iterator

from opslab import proc


@contextlib.contextmanager
def busy_cpus(n: int = 2) -> Iterator[None]:
    """``n`` processes spinning on a CPU each until the block ends (what other work does to a shared host)."""
    children = [proc.spawn([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for child in children:
            child.stop(grace_s=0)


class DelayProxy:
    """A TCP proxy on a free port that holds every chunk from the client ``delay_s`` before passing it
    on: latency added on the network path, the way a slow link or a shaping rule adds it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.delay_s = 0.0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the delay proxy did not start listening within 10 s")
        return self

    def __exit__(self, *exc: object) -> None:
        async def shut() -> None:  # connections still open are cancelled, not left pending
            here = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not here]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shut(), self._loop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delayed: bool) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while chunk := await src.read(65536):
                    if delayed and self.delay_s:
                        await asyncio.sleep(self.delay_s)
                    dst.write(chunk)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
