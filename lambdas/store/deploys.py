"""``DeployStore``: deploys as rows any control-plane process can advance.

A deploy moves ``recorded -> starting -> (promoting ->) done``. Every step is taken
under a short lease (a conditional UPDATE on ``lease_until``), and every move is a
conditional UPDATE on the phase it leaves, so two processes advancing the same deploy
(two API instances, a self-invocation and the scheduler tick) take each step once. A
process that dies mid-step leaves a lease that runs out: the next one carries on.
Progress lines are rows, read back in order by whoever asks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, and_, or_, select, update
from sqlalchemy.orm import Session

from flowhost.lambdas.store.models import (
    DeployProgressRow,
    DeployRow,
    EventRow,
    ServiceRow,
    VersionRow,
)
from flowhost.lambdas.store.records import (
    DeployOptions,
    DeployPhase,
    DeployRecord,
    ProgressLine,
    VersionStatus,
)
from flowhost.lambdas.store.sessions import Transactions

__all__ = ["DeployStore"]

OPEN: tuple[DeployPhase, ...] = ("recorded", "starting", "promoting")


def _record(row: DeployRow) -> DeployRecord:
    return DeployRecord(
        id=row.id,
        service=row.version.service.name,
        number=row.version.number,
        phase=row.phase,  # pyright: ignore[reportArgumentType]
        options=DeployOptions(
            promote=row.promote,
            alias=row.alias,
            allow_breaking=row.allow_breaking,
            actor=row.actor,
            deadline=row.deadline,
        ),
        last_status=row.last_status,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def _changed(result: Result[Any]) -> bool:
    return cast(CursorResult[Any], result).rowcount == 1


class DeployStore(Transactions):
    """Deploys and their progress on the platform's database (the StateStore's engine)."""

    @staticmethod
    def _by_version(s: Session, service: str, number: int) -> DeployRow | None:
        return s.scalars(
            select(DeployRow)
            .join(VersionRow, DeployRow.version_id == VersionRow.id)
            .join(ServiceRow, VersionRow.service_id == ServiceRow.id)
            .where(ServiceRow.name == service, VersionRow.number == number)
        ).one_or_none()

    # -- reads ------------------------------------------------------------------------

    def unfinished(self) -> list[DeployRecord]:
        """Every deploy not yet done, oldest first."""
        with self._read() as s:
            rows = s.scalars(
                select(DeployRow).where(DeployRow.phase.in_(OPEN)).order_by(DeployRow.id)
            )
            return [_record(r) for r in rows]

    def get(self, service: str, number: int) -> DeployRecord | None:
        with self._read() as s:
            row = self._by_version(s, service, number)
            return None if row is None else _record(row)

    def progress(self, service: str, number: int) -> list[ProgressLine]:
        """The deploy's progress lines in the order they were said; none for a version
        recorded without a deploy."""
        with self._read() as s:
            row = self._by_version(s, service, number)
            if row is None:
                return []
            lines = s.scalars(
                select(DeployProgressRow)
                .where(DeployProgressRow.deploy_id == row.id)
                .order_by(DeployProgressRow.id)
            )
            return [ProgressLine(at=line.created_at, message=line.message) for line in lines]

    def version_status(self, deploy_id: int) -> VersionStatus:
        with self._read() as s:
            status = s.scalar(
                select(VersionRow.status)
                .join(DeployRow, DeployRow.version_id == VersionRow.id)
                .where(DeployRow.id == deploy_id)
            )
            return cast(VersionStatus, status)

    # -- steps ------------------------------------------------------------------------

    def claim(self, deploy_id: int, phase: DeployPhase, now: datetime, lease: float) -> bool:
        """Take the step out of ``phase`` for ``lease`` seconds; False if another process
        holds it, or the deploy has moved on."""
        with self._tx() as s:
            result = s.execute(
                update(DeployRow)
                .where(
                    DeployRow.id == deploy_id,
                    DeployRow.phase == phase,
                    or_(DeployRow.lease_until.is_(None), DeployRow.lease_until < now),
                )
                .values(lease_until=now + timedelta(seconds=lease))
            )
            return _changed(result)

    def release(self, deploy_id: int) -> None:
        with self._tx() as s:
            s.execute(update(DeployRow).where(DeployRow.id == deploy_id).values(lease_until=None))

    def release_all(self) -> None:
        """Forget every lease (the only process that could hold them is starting again)."""
        with self._tx() as s:
            s.execute(
                update(DeployRow).where(DeployRow.lease_until.is_not(None)).values(lease_until=None)
            )

    def say(self, deploy_id: int, message: str) -> None:
        with self._tx() as s:
            s.add(DeployProgressRow(deploy_id=deploy_id, message=message))

    def note(self, deploy_id: int, status: str, message: str | None) -> None:
        """Keep the compute's latest status line; with ``message``, add it to progress."""
        with self._tx() as s:
            s.execute(update(DeployRow).where(DeployRow.id == deploy_id).values(last_status=status))
            if message is not None:
                s.add(DeployProgressRow(deploy_id=deploy_id, message=message))

    def move(
        self, deploy_id: int, source: DeployPhase, target: DeployPhase, message: str,
        *, now: datetime, status: VersionStatus | None = None, deadline: datetime | None = None,
    ) -> bool:  # fmt: skip
        """``source -> target`` (and the version to ``status``) with a progress line, in one
        transaction; False (nothing changed) if the deploy was not in ``source``. The
        lease stays with the caller, who releases it when its step ends. ``deadline``:
        the deploy's new deadline."""
        changes: dict[str, object] = {
            "phase": target,
            "finished_at": now if target == "done" else None,
        }
        if deadline is not None:
            changes["deadline"] = deadline
        with self._tx() as s:
            result = s.execute(
                update(DeployRow)
                .where(DeployRow.id == deploy_id, DeployRow.phase == source)
                .values(**changes)
            )
            if not _changed(result):
                return False
            if status is not None:
                row = s.get_one(DeployRow, deploy_id)
                row.version.status, row.version.error = status, None
            s.add(DeployProgressRow(deploy_id=deploy_id, message=message))
            return True

    def fail(self, deploy_id: int, error: str, *, now: datetime) -> bool:
        """Finish the deploy as failed: the version ``failed`` with ``error``, a
        ``deploy_failed`` event and a progress line, in one transaction; False if it was
        already done."""
        with self._tx() as s:
            result = s.execute(
                update(DeployRow)
                .where(and_(DeployRow.id == deploy_id, DeployRow.phase.in_(OPEN)))
                .values(phase="done", lease_until=None, finished_at=now)
            )
            if not _changed(result):
                return False
            row = s.get_one(DeployRow, deploy_id)
            version = row.version
            if version.status == "deploying":
                version.status, version.error = "failed", error
            s.add(
                EventRow(
                    service_id=version.service_id, kind="deploy_failed",
                    version_number=version.number, actor=row.actor, detail={"error": error},
                )
            )  # fmt: skip
            s.add(DeployProgressRow(deploy_id=deploy_id, message=f"failed: {error}"))
            return True
