"""A bad link on 127.0.0.1: a TCP proxy that cuts every connection every `cut_every` seconds, and can
throttle (bytes per second) and delay (seconds per chunk). Runs in a thread; bounded by its owner.

    with FlakyProxy(target_port, cut_every=2.0) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
"""

from __future__ import annotations

import asyncio
import threading
import time


class FlakyProxy:
    def __init__(self, target_port: int, *, cut_every: float | None = None, rate_bps: int | None = None,
                 delay: float = 0.0, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.cut_every = cut_every
        self.rate_bps = rate_bps
        self.delay = delay
        self.port = 0
        self.bytes_up = 0  # client -> server
        self.bytes_down = 0
        self.cuts = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()  # connection handlers, cancelled and awaited on exit
        self._stop: asyncio.Event | None = None

    def __enter__(self) -> FlakyProxy:
        self._thread = threading.Thread(target=self._run, name="flaky-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def __exit__(self, *exc) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(10)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        cutter = asyncio.create_task(self._cutter()) if self.cut_every else None
        await self._stop.wait()
        if cutter:
            cutter.cancel()
        server.close()
        for w in list(self._writers):
            w.transport.abort()
        if self._tasks:  # the handlers end once their connections are gone; no task is left pending
            _, late = await asyncio.wait(set(self._tasks), timeout=5)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await server.wait_closed()

    async def _cutter(self) -> None:
        while True:
            await asyncio.sleep(self.cut_every)
            if self._writers:
                self.cuts += 1
            for w in list(self._writers):
                w.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.close()
                return
            self._writers.update({writer, up_writer})
            try:
                await asyncio.gather(self._pipe(reader, up_writer, "up"), self._pipe(up_reader, writer, "down"),
                                     return_exceptions=True)
            finally:
                for w in (writer, up_writer):
                    self._writers.discard(w)
                    w.close()
        except asyncio.CancelledError:
            pass  # stopped at exit: end normally, so asyncio's stream callback finds no error to log
        finally:
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, way: str) -> None:
        try:
            while True:
                data = await reader.read(16384)
                if not data:
                    break
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.rate_bps:
                    await asyncio.sleep(len(data) / self.rate_bps)
                if way == "up":
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError, OSError):
            pass
        finally:
            try:
                writer.write_eof() if writer.can_write_eof() else None
            except (OSError, RuntimeError):
                pass


def wait_until(predicate, timeout: float, step: float = 0.1) -> bool:
    """Poll `predicate` until true or `timeout` seconds pass (bounded)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
