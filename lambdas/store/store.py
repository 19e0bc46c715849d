"""``StateStore``: services, versions, aliases and the event trail, over SQLAlchemy.

The same code runs on SQLite (``.flowhost/state.db``, the embedded default) and on
PostgreSQL (RDS on AWS). Alias moves are atomic: one transaction updates the alias
and appends the event, with the service row locked against concurrent moves.

When the database is down, every transaction fails with 503 ``state_unavailable``
(:mod:`flowhost.lambdas.store.faults`) until it is back; pooled PostgreSQL connections
are pinged before use, so the first request after a restart gets a fresh one, and
connecting gives up after ``CONNECT_TIMEOUT`` seconds rather than holding a request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from flowhost.errors import DeployError, NotFoundError
from flowhost.lambdas.store.faults import state_errors
from flowhost.lambdas.store.models import (
    AliasRow,
    DeployProgressRow,
    DeployRow,
    EventRow,
    ServiceRow,
    VersionRow,
    utcnow,
)
from flowhost.lambdas.store.records import (
    AliasRecord,
    DeployOptions,
    EventRecord,
    VersionRecord,
    VersionStatus,
    version_number,
)
from flowhost.services.definition import ServiceDefinition
from flowhost.services.routing import PRODUCTION

__all__ = ["PRODUCTION", "StateStore"]

CONNECT_TIMEOUT = 5  # seconds; libpq waits forever by default on an unreachable host
_ALIAS = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def _version(row: VersionRow) -> VersionRecord:
    return VersionRecord(
        service=row.service.name,
        number=row.number,
        code_digest=row.code_digest,
        artifact_run=row.artifact_run,
        environment_digest=row.environment_digest,
        definition=ServiceDefinition.model_validate(row.definition),
        status=row.status,  # pyright: ignore[reportArgumentType]
        error=row.error,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _event(row: EventRow, service: str) -> EventRecord:
    return EventRecord(
        id=row.id,
        service=service,
        kind=row.kind,
        version=row.version_number,
        alias=row.alias,
        previous_version=row.previous_version_number,
        actor=row.actor,
        detail=row.detail,
        created_at=row.created_at,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # no implicit BEGIN: _sqlite_begin starts each one
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")  # first: switching to WAL takes a lock too
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


READ_ONLY = "flowhost_read_only"  # an execution option: the transaction only reads


def _sqlite_begin(connection: Any) -> None:
    """Take the write lock up front (waiting up to busy_timeout), as FOR UPDATE would;
    a read-only transaction (``READ_ONLY``) takes none: in WAL mode it reads a snapshot
    while a writer works."""
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN DEFERRED")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class StateStore:
    """The state of the world. Create with :meth:`open`, then :meth:`migrate`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> StateStore:
        """``sqlite:///path/state.db`` or ``postgresql+psycopg://user@host:port/db``."""
        if url.startswith("sqlite"):
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url)
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            connect_args = {} if "connect_timeout" in url else {"connect_timeout": CONNECT_TIMEOUT}
            engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        return cls(engine)

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from flowhost.lambdas.store.migrate import upgrade

        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """One round trip to the database; ``StateUnavailableError`` if it is down."""
        with state_errors(self.engine.url), self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    @contextmanager
    def _tx(self) -> Generator[Session]:
        with state_errors(self.engine.url), self._session.begin() as session:
            yield session

    # -- lookups --------------------------------------------------------------------

    def _service(self, s: Session, name: str, *, lock: bool = False) -> ServiceRow:
        query = select(ServiceRow).where(ServiceRow.name == name)
        if lock:
            query = query.with_for_update()
        row = s.scalars(query).one_or_none()
        if row is None:
            known = (
                ", ".join(s.scalars(select(ServiceRow.name).order_by(ServiceRow.name))) or "none"
            )
            raise NotFoundError(f"no service {name!r}. Services: {known}.")
        return row

    def _version_row(self, s: Session, service: ServiceRow, number: int) -> VersionRow:
        row = s.scalars(
            select(VersionRow).where(
                VersionRow.service_id == service.id, VersionRow.number == number
            )
        ).one_or_none()
        if row is None:
            known = ", ".join(f"v{v.number}" for v in service.versions) or "none"
            raise NotFoundError(
                f"service {service.name!r} has no version v{number}. Versions: {known}."
            )
        return row

    def services(self) -> list[str]:
        with self._tx() as s:
            return list(s.scalars(select(ServiceRow.name).order_by(ServiceRow.name)))

    def versions(self, service: str) -> list[VersionRecord]:
        with self._tx() as s:
            return [_version(v) for v in self._service(s, service).versions]

    def all_versions(self) -> list[VersionRecord]:
        with self._tx() as s:
            rows = s.scalars(select(VersionRow).order_by(VersionRow.service_id, VersionRow.number))
            return [_version(v) for v in rows]

    def version(self, service: str, number: int) -> VersionRecord:
        with self._tx() as s:
            return _version(self._version_row(s, self._service(s, service), number))

    def aliases(self, service: str | None = None) -> list[AliasRecord]:
        with self._tx() as s:
            query = select(AliasRow).join(ServiceRow).order_by(ServiceRow.name, AliasRow.name)
            if service is not None:
                query = query.where(ServiceRow.name == service)
            return [
                AliasRecord(
                    service=a.service.name, name=a.name, version=a.version.number,
                    updated_at=a.updated_at,
                )
                for a in s.scalars(query)
            ]  # fmt: skip

    def resolve(self, service: str, ref: str = PRODUCTION) -> VersionRecord:
        """The version an alias (``production``) or a version ref (``v3``, ``3``) names."""
        with self._tx() as s:
            svc = self._service(s, service)
            number = version_number(ref)
            if number is not None:
                return _version(self._version_row(s, svc, number))
            for alias in svc.aliases:
                if alias.name == ref:
                    return _version(alias.version)
            known = ", ".join(sorted(a.name for a in svc.aliases)) or "none"
            raise NotFoundError(
                f"service {service!r} has no alias {ref!r}. Aliases: {known}; or name a "
                "version like v1."
            )

    def events(self, service: str, limit: int = 100) -> list[EventRecord]:
        with self._tx() as s:
            svc = self._service(s, service)
            rows = s.scalars(
                select(EventRow)
                .where(EventRow.service_id == svc.id)
                .order_by(EventRow.id.desc())
                .limit(limit)
            )
            return [_event(r, service) for r in rows]

    # -- changes --------------------------------------------------------------------

    def create_version(
        self,
        definition: ServiceDefinition,
        *,
        code_digest: str,
        artifact_run: str | None,
        environment_digest: str,
        actor: str,
        deploy: DeployOptions | None = None,
        progress: Callable[[int], Sequence[str]] | None = None,
    ) -> VersionRecord:
        """Allocate the next version number and record it as ``deploying``; with
        ``deploy``, also its deploy (phase ``recorded``) and first ``progress(number)`` lines, in
        the same transaction, so no version is left deploying with nothing to advance it."""
        with self._tx() as s:
            dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
            s.execute(
                dialect.insert(ServiceRow)
                .values(name=definition.name, created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["name"])
            )  # two first deploys of a service may race to create it
            svc = s.scalars(
                select(ServiceRow).where(ServiceRow.name == definition.name).with_for_update()
            ).one()
            number = (
                s.scalar(select(func.max(VersionRow.number)).where(VersionRow.service_id == svc.id))
                or 0
            ) + 1
            row = VersionRow(
                service=svc,
                number=number,
                code_digest=code_digest,
                artifact_run=artifact_run,
                environment_digest=environment_digest,
                definition=definition.model_dump(mode="json"),
                status="deploying",
                created_by=actor,
            )
            s.add(row)
            s.add(
                EventRow(
                    service_id=svc.id, kind="deploy", version_number=number, actor=actor,
                    detail={"code_digest": code_digest, "artifact_run": artifact_run},
                )
            )  # fmt: skip
            if deploy is not None:
                started = DeployRow(
                    version=row, phase="recorded", promote=deploy.promote, alias=deploy.alias,
                    allow_breaking=deploy.allow_breaking, actor=deploy.actor,
                    deadline=deploy.deadline, created_at=utcnow(),
                )  # fmt: skip
                s.add(started)
                s.flush()
                for line in progress(number) if progress is not None else ():
                    s.add(DeployProgressRow(deploy_id=started.id, message=line))
            s.flush()
            return _version(row)

    def set_status(
        self, service: str, number: int, status: VersionStatus, error: str | None = None
    ) -> VersionRecord:
        with self._tx() as s:
            row = self._version_row(s, self._service(s, service), number)
            row.status, row.error = status, error
            return _version(row)

    def record(
        self,
        service: str,
        kind: str,
        *,
        actor: str,
        version: int | None = None,
        alias: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append an event (audit results, failures) to the trail."""
        with self._tx() as s:
            svc = self._service(s, service)
            s.add(
                EventRow(
                    service_id=svc.id, kind=kind, version_number=version, alias=alias,
                    actor=actor, detail=detail or {},
                )
            )  # fmt: skip

    def move_alias(
        self, service: str, alias: str, number: int, *, actor: str, kind: str = "promote",
        detail: dict[str, Any] | None = None,
    ) -> int | None:  # fmt: skip
        """Point ``alias`` at version ``number`` atomically; returns the previous version."""
        if not _ALIAS.match(alias):
            raise DeployError(
                f"alias must be a lowercase slug (got {alias!r}). Use e.g. 'production', 'staging'."
            )
        with self._tx() as s:
            svc = self._service(s, service, lock=True)
            target = self._version_row(s, svc, number)
            if target.status != "ready":
                raise DeployError(
                    f"{service} v{number} is {target.status}, not ready; only a ready version "
                    "can take an alias. Deploy it again or pick another version."
                )
            current = s.scalars(
                select(AliasRow).where(AliasRow.service_id == svc.id, AliasRow.name == alias)
            ).one_or_none()
            previous = current.version.number if current is not None else None
            if current is None:
                s.add(AliasRow(service_id=svc.id, name=alias, version_id=target.id))
            else:
                current.version_id = target.id
            s.add(
                EventRow(
                    service_id=svc.id, kind=kind, version_number=number, alias=alias,
                    previous_version_number=previous, actor=actor, detail=detail or {},
                )
            )  # fmt: skip
            return previous

    def previous_target(self, service: str, alias: str) -> int:
        """The version ``alias`` pointed at before its last promote (for rollback)."""
        with self._tx() as s:
            svc = self._service(s, service)
            current = next((a for a in svc.aliases if a.name == alias), None)
            if current is None:
                raise NotFoundError(f"service {service!r} has no alias {alias!r} to roll back.")
            moves = s.scalars(
                select(EventRow)
                .where(
                    EventRow.service_id == svc.id,
                    EventRow.alias == alias,
                    EventRow.kind.in_(("promote", "rollback")),
                )
                .order_by(EventRow.id.desc())
            )
            # Walk back over promotes; each rollback undid the newest promote not yet undone.
            undone = 0
            for move in moves:
                if move.kind == "rollback":
                    undone += 1
                elif undone:
                    undone -= 1
                elif move.previous_version_number is not None:
                    prev = self._version_row(s, svc, move.previous_version_number)
                    if prev.status == "ready" and prev.number != current.version.number:
                        return prev.number
            raise DeployError(
                f"{service}@{alias} has no earlier ready version to roll back to. "
                "Promote a version explicitly instead."
            )

    def undeploy(self, service: str, number: int, *, actor: str) -> VersionRecord:
        """Mark a version undeployed; refused while an alias points at it."""
        with self._tx() as s:
            svc = self._service(s, service, lock=True)
            row = self._version_row(s, svc, number)
            pointing = sorted(a.name for a in svc.aliases if a.version_id == row.id)
            if pointing:
                raise DeployError(
                    f"{service} v{number} is still the target of alias(es) {', '.join(pointing)}. "
                    "Promote another version to them (or roll back) before undeploying it."
                )
            row.status = "undeployed"
            s.add(EventRow(service_id=svc.id, kind="undeploy", version_number=number, actor=actor))
            return _version(row)
