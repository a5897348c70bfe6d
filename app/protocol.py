"""HTTP/1.1 per connection: uvicorn's httptools protocol with bounds, timeouts and a clean drain.

uvicorn's protocol bounds nothing before a request reaches the app: llhttp accepts a head of
any size (httptools joins its pieces, so a 100 MB header costs seconds of event loop and
hundreds of MB), a connection that never sends a byte or sends one a second is kept forever,
and on SIGTERM an idle keep-alive connection is closed under a client that may be sending its
next request. This subclass adds, per connection:

- a bounded request head: line plus headers at most ``MLSHIP_MAX_HEADER_BYTES`` and
  ``MLSHIP_MAX_HEADER_COUNT`` headers, else 431 (counted as bytes arrive, so an endless header
  is cut off after the limit, not buffered);
- ``MLSHIP_HEADER_TIMEOUT`` for the head and ``MLSHIP_BODY_TIMEOUT`` for the body, else 408
  (slowloris); an idle keep-alive connection closes after ``MLSHIP_KEEP_ALIVE_TIMEOUT``;
- at most ``MLSHIP_MAX_CONNECTIONS`` connections per worker: a new one closes the oldest that
  carries no request (idle or half-sent, so a pile of those never locks out ``/ping``), or, when
  every one has a request in progress, gets a 503 naming the limit;
- a drain on SIGTERM that loses nothing: requests in progress and the next request of an idle
  connection are answered with ``Connection: close``; only then does the connection close;
- with several workers, an even spread of keep-alive connections: a worker holding more than
  its share closes the surplus after an answer, and the clients reconnect to any worker
  (:class:`app.connections.ConnectionShares`);
- one send per answer: uvicorn writes the status line and headers, then the body, as two
  ``send`` calls (two segments the client must read); the head is held until the body's first
  write and goes out with it (:class:`OneSendTransport`). On loopback under load this was a
  fifth of the worker's CPU per request.

Refusals are JSON ``{"error": ...}`` with ``Connection: close``, written before the connection
is half-closed; what the client still sends is read and dropped for a moment (a bounded
"lingering close"), so the refusal is not lost to a TCP reset.

h11, uvicorn's other parser, bounds the head itself (``h11_max_incomplete_event_size``) but
parses in pure Python: about 160 µs of server CPU per single-row predict here against 90 µs with
httptools and these checks (which cost nothing measurable), and it would need the same timeouts
and drain anyway. So mlship keeps the C parser and counts itself.
"""

from __future__ import annotations

import asyncio
import http
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from app.connections import ConnectionLimits, ConnectionPool, ConnectionShares

# A refused connection is read and dropped for at most this long / this many bytes, then closed.
_LINGER_S = 2.0
_LINGER_BYTES = 64 * 1024
# A held head is joined to a body up to this size (one copy, one send); above, two sends.
_JOIN_BELOW = 256 * 1024


class _Refusal(Exception):
    """Raised from a parser callback: answer ``status`` with ``message`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def protocol_class(
    limits: ConnectionLimits, shares: ConnectionShares | None = None
) -> type[LimitedHttpProtocol]:
    """The protocol class one worker gives uvicorn: its limits, its own connection pool and,
    with several workers, the shares that keep their connections even."""
    return type(
        "WorkerHttpProtocol",
        (LimitedHttpProtocol,),
        {"limits": limits, "pool": ConnectionPool(), "shares": shares, "balanced": set()},
    )


class OneSendTransport:
    """The transport as one request's cycle sees it: the first write after the answer started
    (the status line and headers) is held and sent with the next one (the body, or its first
    chunk), in one ``send``. Everything else passes through to the connection's transport."""

    __slots__ = ("_cycle", "_head_seen", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle = cycle
        self._held: bytes | None = None
        self._head_seen = False

    def write(self, data: bytes) -> None:
        if not self._head_seen and self._cycle.response_started:
            # uvicorn marks the answer started, then writes its head: hold it for the body.
            self._head_seen = True
            self._held = data
            return
        held = self._held
        if held is not None:
            self._held = None
            if len(data) <= _JOIN_BELOW:
                data = held + data
            else:  # a large body: no copy of it just to prepend the head
                self._transport.write(held)
        self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def flush(self) -> None:
        """Send a head still held: an answer without a body write (HEAD) is complete."""
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class LimitedHttpProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection (see the module docstring); use :func:`protocol_class`."""

    limits: ClassVar[ConnectionLimits]
    pool: ClassVar[ConnectionPool]
    shares: ClassVar[ConnectionShares | None] = None
    balanced: ClassVar[set[LimitedHttpProtocol]]  # this worker's connections the shares count

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.limits.keep_alive_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = False  # between a request's first byte and the end of its headers
        self._head_received = 0  # bytes that arrived while the head was incomplete
        self._in_body = False  # between the end of the headers and the end of the body
        self._reading = 0  # size of the data being parsed
        self._draining = False
        self._last_cycle: RequestResponseCycle | None = None  # to answer with Connection: close
        self._refused = False
        self._lingering = False
        self._dropped = 0
        self._leaving = False  # told to close after an answer, to even out the workers

    # -- connection life -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self.pool.evict_oldest():
            self.pool.note("full", "connection limit reached: refused new connections (503)")
            self._refuse(
                503,
                f"This server process already holds {self.limits.max_connections} connections "
                "(MLSHIP_MAX_CONNECTIONS), each with a request in progress. Retry shortly.",
            )
            return
        self.pool.mark_idle(self)
        self._arm(self.limits.header_timeout, self._head_timed_out)
        if self.shares is not None and _local_port(transport) == self.shares.port:
            self.balanced.add(self)
            self.shares.held(len(self.balanced))

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.pool.mark_busy(self)
        if self._lingering:
            self._lingering = False
            self.pool.lingering -= 1
        super().connection_lost(exc)
        if self.shares is not None and self in self.balanced:
            self.balanced.discard(self)
            if self._leaving:
                self._leaving = False
                self.shares.left()
            self.shares.held(len(self.balanced))

    def evict(self) -> None:
        """Close this connection (it carries no request) to make room for a new one."""
        self.pool.mark_busy(self)
        self.connections.discard(self)
        self._disarm()
        self._unset_keepalive_if_required()
        self.transport.close()

    def shutdown(self) -> None:
        """SIGTERM: answer what was read with ``Connection: close``, then close.

        A request in progress (or the last one queued behind it) gets ``Connection: close`` on
        its answer. An idle connection stays open: its next request, if it comes before the
        keep-alive or head timeout closes the connection, is answered with ``Connection:
        close``. Either way the client is told before the connection goes away.
        """
        self._draining = True
        if self._refused:
            return
        last = self.pipeline[0][0] if self.pipeline else self.cycle
        if last is not None and not last.response_started:
            self._answer_last(last)
        elif last is None and not self._in_head:
            # Connected but silent: it gets what an idle keep-alive connection gets.
            self._arm(
                min(self.limits.keep_alive_timeout, self.limits.header_timeout),
                self._head_timed_out,
            )

    def _answer_last(self, cycle: RequestResponseCycle) -> None:
        """Make ``cycle`` the connection's last answer (the one that says close)."""
        previous = self._last_cycle
        if previous is not None and previous is not cycle and not previous.response_started:
            previous.keep_alive = True  # a later request was read: that one answers close
        cycle.keep_alive = False
        self._last_cycle = cycle

    # -- reading -------------------------------------------------------------------------
    # Timers are armed only when a request spans several reads: a head or a body that arrives
    # whole (nearly every request) costs no timer at all.

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._drop(data)
            return
        self._unset_keepalive_if_required()
        self._reading = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            refusal = e.__context__
            if isinstance(refusal, _Refusal):
                self._refuse(refusal.status, refusal.message)
            else:
                self.pool.note("invalid", "invalid HTTP requests: answered 400")
                self._refuse(400, "The request is not valid HTTP/1.1.")
            return
        except httptools.HttpParserUpgrade:
            # No protocol upgrades here; uvicorn already answers the request as plain HTTP.
            return
        if self._in_head:
            # Counted as it arrives, before it is parsed: an endless header is cut off here.
            self._head_received += len(data)
            if self._head_received > self.limits.max_header_bytes:
                self._refuse(431, self._head_too_long())
            elif self._deadline is None:
                self._arm(self.limits.header_timeout, self._head_timed_out)
        elif self._in_body and self._deadline is None:
            self._arm(self.limits.body_timeout, self._body_timed_out)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_received = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()  # a new connection's head timer, or the one of a head sent in pieces
        headers = self.headers
        if len(headers) > self.limits.max_header_count:
            raise _Refusal(
                431,
                f"The request has more than {self.limits.max_header_count} headers "
                "(MLSHIP_MAX_HEADER_COUNT). Send fewer headers.",
            )
        # The head is within what arrived so far; sum its parts only when that is over the limit.
        if self._head_received + self._reading > self.limits.max_header_bytes:
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in headers)
            if size > self.limits.max_header_bytes:
                raise _Refusal(431, self._head_too_long())
        self.pool.mark_busy(self)  # the request goes to the app: not displaceable any more
        super().on_headers_complete()
        # The cycle's task starts on the next turn of the loop: nothing was written yet.
        cycle = self.cycle
        one_send = OneSendTransport(self.transport, cycle)
        cycle.transport = one_send  # type: ignore[assignment]

        def answered() -> None:  # this cycle's answer is complete (pipelining: not self.cycle)
            one_send.flush()
            self.on_response_complete()

        cycle.on_response = answered
        if self._draining:
            self._answer_last(self.cycle)
        elif (
            self.shares is not None
            and cycle.keep_alive
            and not self._leaving
            and self in self.balanced
            and self.shares.should_leave(len(self.balanced))
        ):
            self._leaving = True  # this worker holds more than its share: the client moves
            self._answer_last(cycle)
        self._in_body = True

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_body = False
        self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self.pool.mark_idle(self)

    def _head_too_long(self) -> str:
        return (
            f"The request line and headers exceed {self.limits.max_header_bytes} bytes "
            "(MLSHIP_MAX_HEADER_BYTES). Send fewer or shorter headers."
        )

    # -- timers --------------------------------------------------------------------------

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if not self._in_head:  # not a byte of a request: close quietly, as for keep-alive
            self.evict()
            return
        self.pool.note("head-timeout", "request heads too slow: answered 408")
        self._refuse(
            408,
            f"The request line and headers did not arrive within {self.limits.header_timeout:g} "
            "s (MLSHIP_HEADER_TIMEOUT). Send the whole head at once.",
        )

    def _body_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            # The app answered before the body was in (a 413, say): no second answer.
            self.transport.close()
            return
        self.pool.note("body-timeout", "request bodies too slow: answered 408")
        self._refuse(
            408,
            f"The request body did not arrive within {self.limits.body_timeout:g} s of its "
            "headers (MLSHIP_BODY_TIMEOUT). Send the body at once after the headers.",
        )

    # -- refusing ------------------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` (JSON, ``Connection: close``) and close after a short linger."""
        self._refused = True
        self._disarm()
        self._unset_keepalive_if_required()
        self.pool.mark_busy(self)
        self.connections.discard(self)  # no longer counts against the limit, nor the drain
        answered = False
        for cycle in [self.cycle, *(c for c, _ in self.pipeline)]:
            if cycle is not None and not cycle.response_complete:
                answered |= cycle.response_started
                cycle.disconnected = True  # the app's request sees the client gone
                cycle.message_event.set()
        self.pipeline.clear()
        if answered:  # an answer is half-written: nothing sound can follow it
            self.transport.close()
            return
        self.transport.write(self._refusal(status, message))
        self._linger()

    def _refusal(self, status: int, message: str) -> bytes:
        body = orjson.dumps({"error": message})
        phrase = http.HTTPStatus(status).phrase
        head = [f"HTTP/1.1 {status} {phrase}".encode()]
        head += [name + b": " + value for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json",
            b"content-length: " + str(len(body)).encode(),
            b"connection: close",
        ]
        if status == 503:
            head.append(b"retry-after: 1")
        return b"\r\n".join(head) + b"\r\n\r\n" + body

    def _linger(self) -> None:
        """Half-close, so the answer is delivered, and read what still comes for a moment:
        closing with unread data would reset the connection and lose the answer."""
        if self.pool.lingering >= self.limits.max_lingering or not self.transport.can_write_eof():
            self.transport.close()
            return
        self.pool.lingering += 1
        self._lingering = True
        self.transport.write_eof()
        self.transport.resume_reading()
        self._deadline = self.loop.call_later(_LINGER_S, self.transport.close)

    def _drop(self, data: bytes) -> None:
        self._dropped += len(data)
        if self._dropped > _LINGER_BYTES:
            self.transport.close()


def _local_port(transport: asyncio.BaseTransport) -> int | None:
    """The port a connection arrived on (None for a socket without one)."""
    address = transport.get_extra_info("sockname")
    return address[1] if isinstance(address, tuple) and len(address) >= 2 else None
