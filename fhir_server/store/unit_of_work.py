"""All-or-nothing groups of writes.

On a replica set a unit of work is a MongoDB transaction. Where the server has
none (the embedded store), each write registers how to undo itself and a
failure runs those undos in reverse order, so a failed transaction Bundle or
booking still leaves no trace of its other writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError

from fhir_server.fhir.errors import Conflict
from fhir_server.store.database import Database

Undo = Callable[[], Awaitable[Any]]


@dataclass
class UnitOfWork:
    session: AsyncClientSession | None = None
    undos: list[Undo] = field(default_factory=list)
    after_commit: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    def on_failure(self, undo: Undo) -> None:
        """Register how to reverse a write (ignored inside a real transaction)."""
        if self.session is None:
            self.undos.append(undo)

    async def _rollback(self) -> None:
        for undo in reversed(self.undos):
            with contextlib.suppress(PyMongoError):
                await undo()
        self.undos.clear()


async def _commit(session: AsyncClientSession) -> None:
    """Commit; a commit that lost to a concurrent transaction is a 409, not a 500."""
    try:
        await session.commit_transaction()
    except PyMongoError as exc:
        if exc.has_error_label("TransientTransactionError"):
            raise Conflict("The change conflicted with a concurrent one; retry.") from None
        raise


@contextlib.asynccontextmanager
async def unit_of_work(database: Database) -> AsyncIterator[UnitOfWork]:
    if database.transactions:
        async with database.client.start_session() as session:
            await session.start_transaction()
            work = UnitOfWork(session=session)
            try:
                yield work
            except BaseException:
                await session.abort_transaction()
                raise
            await _commit(session)
    else:
        work = UnitOfWork()
        try:
            yield work
        except BaseException:
            await work._rollback()
            raise
    for hook in work.after_commit:
        await hook()
