"""A fault-injecting TCP proxy on 127.0.0.1, standing in for `tc netem` (not on this kernel).

Every byte is delayed by ``delay_s`` in each direction. Each HTTP exchange on a
connection (client bytes after a response, or the first ones) draws one fault:

- ``drop_request``: forward part of the request, then reset both sides (the receiver
  never gets a whole request);
- ``drop_response``: forward the whole request, then reset when the answer starts
  (the receiver committed, the sender never hears it: the retry is a replay);
- ``stall``: stop reading for ``stall_s`` before forwarding the request (a stalled
  read; TCP backpressure reaches the sender);
- or nothing.

A dropped connection is gone, so ``drop_rate`` is also the share of connections that
end mid-request. The proxy never parses HTTP; it only watches which way bytes flow.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
from dataclasses import dataclass

__all__ = ["FaultProxy", "Faults", "NeverAnswers"]


@dataclass(frozen=True, slots=True)
class Faults:
    drop_rate: float = 0.2
    """Share of exchanges whose connection is reset mid-request (half before the
    receiver has the request, half after it answered)."""
    delay_s: float = 0.2
    """Added to every chunk, each way."""
    stall_rate: float = 0.1
    """Share of exchanges whose request is not read for ``stall_s``."""
    stall_s: float = 1.0
    seed: int = 0


class FaultProxy:
    def __init__(self, target_port: int, faults: Faults, *, name: str = "proxy") -> None:
        self.target_port = target_port
        self.faults = faults
        self.name = name
        self.stats: collections.Counter[str] = collections.Counter()
        self._rng = random.Random(faults.seed)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.stats["connections"] += 1
        writers = {client_w}
        self._writers.add(client_w)
        try:
            try:
                server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                self.stats["upstream refused"] += 1
                client_w.transport.abort()
                return
            writers.add(server_w)
            self._writers.add(server_w)
            conn = _Connection(self, client_w, server_w)
            try:
                await asyncio.gather(
                    conn.upstream(client_r, server_w), conn.downstream(server_r, client_w)
                )
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                conn.reset()
        finally:
            self._writers -= writers
            for w in writers:
                w.close()
            self._tasks.discard(task)

    def draw(self) -> str:
        x = self._rng.random()
        f = self.faults
        if x < f.drop_rate / 2:
            return "drop_request"
        if x < f.drop_rate:
            return "drop_response"
        if x < f.drop_rate + f.stall_rate:
            return "stall"
        return "none"


class _Connection:
    """One proxied connection: two pumps that share the exchange's fault."""

    def __init__(
        self, proxy: FaultProxy, client_w: asyncio.StreamWriter, server_w: asyncio.StreamWriter
    ) -> None:
        self.proxy = proxy
        self.client_w = client_w
        self.server_w = server_w
        self.fault = "none"
        self.answering = True  # the last bytes went server -> client (or nothing yet)
        self.dead = False

    def reset(self) -> None:
        self.dead = True
        self.client_w.transport.abort()
        self.server_w.transport.abort()

    async def upstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats, delay = self.proxy.stats, self.proxy.faults.delay_s
        while not self.dead:
            data = await reader.read(65536)
            if not data:
                break
            if self.answering:  # a new exchange begins
                self.answering = False
                self.fault = self.proxy.draw()
                stats["exchanges"] += 1
                if self.fault == "stall":
                    stats["stalled reads"] += 1
                    await asyncio.sleep(self.proxy.faults.stall_s)
            if self.fault == "drop_request":
                stats["dropped mid-request (receiver never had it)"] += 1
                writer.write(data[: self.proxy._rng.randrange(len(data))])
                await asyncio.sleep(delay)
                self.reset()
                return
            await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
        if not self.dead and writer.can_write_eof():
            writer.write_eof()

    async def downstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats, delay = self.proxy.stats, self.proxy.faults.delay_s
        while not self.dead:
            data = await reader.read(65536)
            if not data:
                break
            self.answering = True
            if self.fault == "drop_response":
                stats["dropped mid-response (receiver had it; ack lost)"] += 1
                self.reset()
                return
            await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
        if not self.dead and writer.can_write_eof():
            writer.write_eof()


class NeverAnswers:
    """A TCP listener that accepts connections, reads nothing and never answers."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.connections = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(w)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in self._writers:
            w.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
