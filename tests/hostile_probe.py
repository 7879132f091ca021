"""A keep-alive client that sends hostile requests and collects every sign of a broken service.

It fails a request that gets a 5xx, loses its connection (or makes the server close it), gets
no GraphQL answer, or whose answer or server log lines carry a traceback, SQL or the name of a
driver or ORM. Failures are grouped by kind, keeping the shortest request as the example.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from tests.subprocess_server import LiveServer

TIMEOUT_S = 30.0
# Case-sensitive: SQL keywords as a statement spells them, exception class names, traceback text.
LEAKS = (
    "Traceback (most recent call last)",
    'File "/',
    "SELECT ",
    "INSERT ",
    "UPDATE ",
    "DELETE FROM",
    " FROM ",
    " WHERE ",
    "[SQL:",
    "[parameters:",
    "OperationalError",
    "IntegrityError",
    "DataError",
    "ProgrammingError",
    "InterfaceError",
    "DBAPIError",
    "StatementError",
    "InternalError",
)
# Case-insensitive: drivers and ORMs.
NAMES = ("psycopg", "sqlalchemy", "sqlalche.me", "aiosqlite", "sqlite3", "asyncpg", "sqlmodel")
LOG_RECORD_START = re.compile(r"^(\d{4}-\d\d-\d\d \d|(DEBUG|INFO|WARNING|ERROR|CRITICAL):)")
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")
VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|\d+")


@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    label: str = ""

    def summary(self, limit: int = 300) -> str:
        text = self.body.decode("utf-8", errors="backslashreplace")
        if len(text) > limit:
            text = f"{text[:limit]}... ({len(self.body)} bytes)"
        name = f"[{self.label}] " if self.label else ""
        return f"{name}{self.method} {self.path} {text}"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Failure:
    kind: str
    detail: str
    example: Request
    count: int = 1

    def __str__(self) -> str:
        return f"{self.kind} x{self.count}: {self.detail}\n    e.g. {self.example.summary()}"


def leaks_in(text: str, request: Request) -> list[str]:
    """Leak markers present in ``text`` that the request did not bring in itself."""
    sent = request.body.decode("utf-8", errors="replace") + request.path
    found = [m for m in LEAKS if m in text and m not in sent]
    lowered, sent_lowered = text.lower(), sent.lower()
    found += [n for n in NAMES if n in lowered and n not in sent_lowered]
    return found


def normalized(line: str) -> str:
    """A log or error line with its values blanked, so one defect groups as one kind."""
    return VALUES.sub("…", line.strip())[:160]


class Probe:
    """Sends requests over one keep-alive connection at a time and records failures."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.connection: http.client.HTTPConnection | None = None
        self.previous: Request | None = None
        self.sent = 0
        self.failures: dict[tuple[str, str], Failure] = {}

    def close(self) -> None:
        self._disconnect()

    def fail(self, kind: str, detail: str, request: Request) -> None:
        key = (kind, detail)
        known = self.failures.get(key)
        if known is None:
            self.failures[key] = Failure(kind, detail, request)
            return
        known.count += 1
        if len(request.body) < len(known.example.body):
            known.example = request

    def send(self, request: Request) -> Answer | None:
        """The answer, or None when there was none; every problem is recorded."""
        self.sent += 1
        reused = self.connection is not None
        try:
            answer = self._exchange(request)
        except TimeoutError:
            self._disconnect()
            self.fail("no answer within the timeout", f"{TIMEOUT_S:.0f} s", request)
            answer = None
        except (OSError, http.client.HTTPException) as exc:
            self._disconnect()
            if reused and self.previous is not None:
                # The server closed the connection after answering the previous request.
                self.fail("connection dropped after an answer", type(exc).__name__, self.previous)
            try:
                answer = self._exchange(request)
            except (OSError, http.client.HTTPException) as again:
                self._disconnect()
                self.fail("dropped connection, no answer", type(again).__name__, request)
                answer = None
        self.previous = request
        if answer is None or answer.status >= 500:
            # uvicorn logs an application's exception after it has sent the 500: let it.
            time.sleep(0.2)
        self._check_log(request)
        if answer is not None:
            self._check_answer(request, answer)
        if self.server.process.poll() is not None:
            self.fail("server process died", f"exit {self.server.process.returncode}", request)
            raise RuntimeError("the server process died; see the failures")
        return answer

    def post_graphql(
        self, body: bytes, *, accept: str = "application/json", label: str = ""
    ) -> Any:
        """POST a GraphQL request body; the decoded JSON answer, if there is one."""
        headers = {"content-type": "application/json", "accept": accept}
        answer = self.send(Request("POST", "/graphql", body, headers, label))
        if answer is None:
            return None
        try:
            return answer.json()
        except ValueError:
            return None

    def _exchange(self, request: Request) -> Answer:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(
                self.server.host, self.server.port, timeout=TIMEOUT_S
            )
        self.connection.request(
            request.method, request.path, body=request.body or None, headers=request.headers
        )
        response = self.connection.getresponse()
        body = response.read()
        answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
        if response.will_close:
            self._disconnect()
            if answer.status != 413:  # closing after refusing an oversized body is HTTP's way
                self.fail("server closed the connection", f"HTTP {answer.status}", request)
        return answer

    def _disconnect(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _check_answer(self, request: Request, answer: Answer) -> None:
        text = answer.body.decode("utf-8", errors="replace")
        if answer.status >= 500:
            self.fail("HTTP 5xx", f"{answer.status} {normalized(text)[:80]}", request)
        for marker in leaks_in(text, request):
            self.fail("leak in the response", marker, request)
        if not request.path.startswith("/graphql") or answer.status in {405, 413, 415}:
            return
        try:
            body = answer.json()
        except ValueError:
            self.fail("not a GraphQL response", f"HTTP {answer.status}: {text[:60]!r}", request)
            return
        if not isinstance(body, dict) or not ({"data", "errors"} & body.keys()):
            self.fail("not a GraphQL response", f"HTTP {answer.status}: {text[:60]!r}", request)
            return
        for error in body.get("errors") or []:
            code = (error.get("extensions") or {}).get("code")
            if code == "INTERNAL_SERVER_ERROR" or error.get("message") == "Unexpected error.":
                where = ".".join(str(p) for p in error.get("path") or ()) or "-"
                root = where.split(".")[0]
                self.fail("masked unexpected error", f"at {root}", request)

    def _check_log(self, request: Request) -> None:
        for record in _log_records(self.server.new_log()):
            if "Traceback (most recent call last)" in record:
                self.fail("traceback in the server log", _exception_line(record), request)
                continue
            for marker in leaks_in(record, request):
                self.fail("leak in the server log", f"{marker}: {normalized(record)}", request)

    def report(self) -> str:
        lines = [f"{self.sent} requests, {len(self.failures)} kinds of failure:"]
        lines += [str(f) for f in sorted(self.failures.values(), key=lambda f: f.kind)]
        return "\n".join(lines)


def _exception_line(traceback: str) -> str:
    """The line naming the exception (the last one: the cause others were raised from)."""
    lines = [line for line in traceback.splitlines() if EXCEPTION_LINE.match(line)]
    return normalized(lines[-1] if lines else traceback.rstrip().splitlines()[-1])


def _log_records(text: str) -> list[str]:
    """Log text split into records: a record's traceback lines stay with it."""
    records: list[str] = []
    for line in text.splitlines():
        if LOG_RECORD_START.match(line) or not records:
            records.append(line)
        else:
            records[-1] += "\n" + line
    return records
