"""``EnvironmentBuildStore``: which environment builds run, so none runs twice at once.

One row per environment digest. The process that inserts it (the primary key decides
between two) starts the build; every other deploy of that digest waits on it. A failed
build is started again only by a deploy that began after it failed (conditional UPDATE
on the state and time it leaves), so a retry is one build too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import IntegrityError

from flowhost.lambdas.store.models import EnvironmentBuildRow
from flowhost.lambdas.store.records import UtcDatetime
from flowhost.lambdas.store.sessions import Transactions

__all__ = ["BuildRecord", "EnvironmentBuildStore"]

BuildRowState = Literal["building", "built", "failed"]


class BuildRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    digest: str
    state: BuildRowState
    runner: str | None
    error: str | None
    started_at: UtcDatetime
    finished_at: UtcDatetime | None


def _record(row: EnvironmentBuildRow) -> BuildRecord:
    return BuildRecord(
        digest=row.digest, state=row.state, runner=row.runner, error=row.error,  # pyright: ignore[reportArgumentType]
        started_at=row.started_at, finished_at=row.finished_at,
    )  # fmt: skip


class EnvironmentBuildStore(Transactions):
    def get(self, digest: str) -> BuildRecord | None:
        with self._read() as s:
            row = s.get(EnvironmentBuildRow, digest)
            return None if row is None else _record(row)

    def begin(self, digest: str, now: datetime) -> bool:
        """Record a build of ``digest`` as started; False if one is recorded already."""
        try:
            with self._tx() as s:
                s.add(EnvironmentBuildRow(digest=digest, state="building", started_at=now))
        except IntegrityError:
            return False
        return True

    def restart(self, digest: str, seen: BuildRecord, now: datetime) -> bool:
        """Start ``digest`` again after the build ``seen`` ended without an environment;
        False if another process did first."""
        with self._tx() as s:
            result = s.execute(
                update(EnvironmentBuildRow)
                .where(
                    EnvironmentBuildRow.digest == digest,
                    EnvironmentBuildRow.state == seen.state,
                    EnvironmentBuildRow.started_at == seen.started_at,
                )
                .values(state="building", runner=None, error=None, started_at=now, finished_at=None)
            )
            return cast(CursorResult[Any], result).rowcount == 1

    def set_runner(self, digest: str, runner: str) -> None:
        with self._tx() as s:
            s.execute(
                update(EnvironmentBuildRow)
                .where(EnvironmentBuildRow.digest == digest)
                .values(runner=runner)
            )

    def finish(self, digest: str, state: BuildRowState, now: datetime, error: str | None = None):
        """The build ended (``built`` or ``failed``); once: a later call changes nothing."""
        with self._tx() as s:
            s.execute(
                update(EnvironmentBuildRow)
                .where(
                    EnvironmentBuildRow.digest == digest,
                    EnvironmentBuildRow.state == "building",
                )
                .values(state=state, error=error, finished_at=now)
            )

    def forget(self, digest: str) -> None:
        """Drop the record of a build that was stopped unfinished (its runner's platform
        stopped it): the next deploy of the digest starts a new build."""
        with self._tx() as s:
            s.execute(
                delete(EnvironmentBuildRow).where(
                    EnvironmentBuildRow.digest == digest, EnvironmentBuildRow.state == "building"
                )
            )

    def all(self) -> list[BuildRecord]:
        with self._read() as s:
            rows = s.scalars(select(EnvironmentBuildRow).order_by(EnvironmentBuildRow.started_at))
            return [_record(r) for r in rows]
