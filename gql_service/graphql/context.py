"""Per-request context: principal, request id, DataLoaders and the unit-of-work factory."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from gql_service.announcements import Broker
from gql_service.graphql.loaders import Loaders
from gql_service.idempotency import Claim
from gql_service.languages import DEFAULT, Language
from gql_service.principal import Principal
from gql_service.queries import Reader
from gql_service.read_session import ReadSession
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork


def new_request_id() -> str:
    """A request's id: 32 random hex digits. It names a request in logs and responses, and
    need not be unpredictable: Python's generator (seeded from the system's in each process,
    again after a fork) spares a getrandom() system call per request."""
    return f"{random.getrandbits(128):032x}"


def request_unit_of_work(
    engine: AsyncEngine,
    settings: Settings,
    principal: Principal,
    reads: ReadSession,
    broker: Broker | None,
    *,
    claim: Claim | None = None,
    dry_run: bool = False,
) -> UnitOfWork:
    """A request's write, as its principal: retried as the settings say, after the request's
    read connection went back (a request never holds two), announced to the broker."""
    return UnitOfWork(
        engine,
        actor=principal.name,
        max_attempts=settings.transaction_retries,
        claim=claim,
        before=reads.release,
        broker=broker,
        dry_run=dry_run,
    )


@dataclass
class Context:
    request: Request
    response: Response
    settings: Settings
    engine: AsyncEngine
    # The request's one read connection; the endpoint closes it when the response is done.
    reads: ReadSession
    reader: Reader
    principal: Principal
    request_id: str
    # Why the request's credentials were not accepted; the authorization extension answers it.
    authentication_error: Exception | None = None
    idempotency: Claim | None = None
    # The language of messages, negotiated once from Accept-Language (languages.py).
    language: Language = DEFAULT
    # This worker's subscribers of committed changes (None: subscriptions are off).
    broker: Broker | None = None
    # How the fast lane's run of this request's write failed (fast_writes.py): the resolver
    # answers with it instead of running the write again.
    attempted: Exception | None = None
    _loaders: Loaders | None = field(default=None, init=False, repr=False)

    @property
    def loaders(self) -> Loaders:
        """The request's DataLoaders, made on first use (a compiled read needs none)."""
        if self._loaders is None:
            self._loaders = Loaders(self.reader)
        return self._loaders

    def unit_of_work(self, *, dry_run: bool = False) -> UnitOfWork:
        return request_unit_of_work(
            self.engine,
            self.settings,
            self.principal,
            self.reads,
            self.broker,
            claim=self.idempotency,
            dry_run=dry_run,
        )

    def take_attempted(self) -> Exception | None:
        attempted, self.attempted = self.attempted, None
        return attempted

    def refresh(self) -> None:
        """Forget what this request has loaded, so a mutation's payload shows fresh data."""
        self._loaders = None
