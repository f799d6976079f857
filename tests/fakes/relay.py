"""A TCP relay: listen on one address, forward each connection to a service on loopback.

The partition test gives each worker "host" (a network namespace) its own
relays on the host end of its veth link, so PostgreSQL, Redis and the SMTP
sink, all listening on 127.0.0.1 only, are reached from the namespace
through that link alone. Cutting the link stalls those connections the way a
real network partition does: nothing is closed, packets are just lost.
"""

from __future__ import annotations

import asyncio
import threading
import time


class Relays:
    """Relays run on one event loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tcp-relays", daemon=True)
        self.servers: list[asyncio.base_events.Server] = []
        self.bytes_from: dict[tuple[str, int], int] = {}  # (listen host, port) -> bytes received from clients
        self.last_from: dict[tuple[str, int], float] = {}  # ... and when, monotonic
        self.connections: dict[int, tuple[tuple[str, int], float]] = {}  # open ones: id -> (key, opened at)
        self.thread.start()

    def add(self, *, listen_host: str, target_port: int, target_host: str = "127.0.0.1") -> int:
        """Relay listen_host:<ephemeral port> to target_host:target_port; return the port listened on."""

        async def start() -> asyncio.base_events.Server:
            return await asyncio.start_server(
                lambda reader, writer: self._pipe_pair(reader, writer, target_host, target_port),
                host=listen_host,
                port=0,
            )

        server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(timeout=10)
        self.servers.append(server)
        port = server.sockets[0].getsockname()[1]
        server.dwv_key = (listen_host, port)
        return port

    async def _pipe_pair(self, client_reader, client_writer, target_host: str, target_port: int) -> None:
        local = client_writer.get_extra_info("sockname")
        key = (local[0], local[1])
        self.connections[id(client_writer)] = (key, time.monotonic())
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(
                self._pipe(client_reader, upstream_writer, key),
                self._pipe(upstream_reader, client_writer, None),
                return_exceptions=True,
            )
        finally:
            self.connections.pop(id(client_writer), None)

    def open_since(self, key: tuple[str, int], before: float) -> int:
        """Return how many connections to the relay at `key` opened before `before` (monotonic) are still open."""
        return sum(1 for k, opened in list(self.connections.values()) if k == key and opened < before)

    async def _pipe(self, reader, writer, key) -> None:
        try:
            while data := await reader.read(65536):
                if key is not None:
                    self.bytes_from[key] = self.bytes_from.get(key, 0) + len(data)
                    self.last_from[key] = time.monotonic()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # Either side gone: end both, as a host's TCP stack would once it notices.
            try:
                writer.close()
            except (ConnectionError, OSError, RuntimeError):
                pass

    def stop(self) -> None:
        async def close() -> None:
            for server in self.servers:
                server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
