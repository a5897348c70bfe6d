"""One ``send`` per answer: the status line and headers leave with the body (app/protocol.py),
not as a segment of their own. The protocol runs on a transport that records each write the
way the event loop would hand it to the socket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from app.connections import ConnectionLimits
from app.protocol import _JOIN_BELOW, protocol_class

_LIMITS = ConnectionLimits(
    max_connections=16,
    max_header_bytes=8192,
    max_header_count=50,
    header_timeout=5.0,
    body_timeout=5.0,
    keep_alive_timeout=5,
)


class RecordingTransport(asyncio.Transport):
    """The socket side of one connection: every ``write`` call is one send."""

    def __init__(self) -> None:
        super().__init__()
        self.sends: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.sends.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


def _app(*bodies: bytes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        length = sum(len(b) for b in bodies)
        headers = [(b"content-length", str(length).encode()), (b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, body in enumerate(bodies):
            await send(
                {"type": "http.response.body", "body": body, "more_body": i < len(bodies) - 1}
            )

    return app


def _exchange(app: Any, request: bytes) -> list[bytes]:
    async def run() -> list[bytes]:
        config = Config(app, lifespan="off", access_log=False)
        config.load()
        protocol = protocol_class(_LIMITS)(config=config, server_state=ServerState(), app_state={})
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(request)
        while protocol.tasks:
            await asyncio.gather(*protocol.tasks)
        protocol.connection_lost(None)
        return transport.sends

    return asyncio.run(run())


POST = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"


def test_an_answer_is_one_send() -> None:
    sends = _exchange(_app(b"hello"), POST)

    assert len(sends) == 1
    assert sends[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert sends[0].endswith(b"\r\n\r\nhello")


def test_head_answers_and_streamed_answers_keep_their_order() -> None:
    head = _exchange(_app(b"hello"), b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n")
    streamed = _exchange(_app(b"one,", b"two"), POST)

    assert len(head) == 1 and head[0].endswith(b"\r\n\r\n")  # no body, still sent
    assert len(streamed) == 2
    assert streamed[0].startswith(b"HTTP/1.1 200 OK\r\n") and streamed[0].endswith(b"one,")
    assert streamed[1] == b"two"


@pytest.mark.parametrize("size", [_JOIN_BELOW, _JOIN_BELOW + 1])
def test_a_large_body_is_not_copied_to_join_its_head(size: int) -> None:
    body = b"x" * size

    sends = _exchange(_app(body), POST)

    assert b"".join(sends).endswith(b"\r\n\r\n" + body)
    assert len(sends) == (1 if size <= _JOIN_BELOW else 2)


def test_pipelined_requests_are_each_answered_whole_in_order() -> None:
    head = b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n"

    sends = _exchange(_app(b"hello"), head + POST + head)

    answers = b"".join(sends).split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(answers) == 3
    assert answers[0].endswith(b"\r\n\r\n") and answers[2].endswith(b"\r\n\r\n")
    assert answers[1].endswith(b"\r\n\r\nhello")
