"""All-or-nothing groups of writes.

On a replica set a unit of work is a MongoDB transaction. Where the server has
none (the embedded store), the writes are staged in the unit and made at its
end through the intent log (`store.intents`): a failure before the end leaves
no trace, a conflict while applying undoes what was applied, and a crash
mid-way is finished or undone by the recovery pass (`store.recovery`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError

from fhir_server.fhir.errors import Conflict
from fhir_server.store import intents
from fhir_server.store.database import Database

Undo = Callable[[], Awaitable[Any]]


@dataclass
class UnitOfWork:
    session: AsyncClientSession | None = None
    undos: list[Undo] = field(default_factory=list)
    after_commit: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    staged: intents.Staged = field(default_factory=intents.Staged)

    @property
    def deferred(self) -> bool:
        """Whether writes are staged for the intent log (no transaction to run them in)."""
        return self.session is None

    def on_failure(self, undo: Undo) -> None:
        """Register how to reverse an effect outside the store (a cache entry, ...)."""
        if self.session is None:
            self.undos.append(undo)

    def staged_row(self, collection: str, rid: str) -> dict[str, Any] | None:
        """The current row this unit will write for `rid`, if it writes one."""
        return self.staged.current.get((collection, rid))

    def record_key(self, key: str, token: str, result: dict[str, Any]) -> None:
        """Store the Idempotency-Key's result with this unit's writes (or not at all)."""
        self.staged.key = intents.KeyResult(key, token, result)

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
                if work.staged.key is not None:
                    await work.staged.key.apply(database.db, session)
            except BaseException:
                await session.abort_transaction()
                raise
            await _commit(session)
    else:
        work = UnitOfWork()
        try:
            yield work
            await intents.commit(database, work.staged)
        except BaseException:
            await work._rollback()
            raise
    for hook in work.after_commit:
        await hook()
