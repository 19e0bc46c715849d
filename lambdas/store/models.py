"""The state of the world as SQLAlchemy 2 models (SQLite locally, PostgreSQL on RDS).

Schema changes go through Alembic migrations in ``lambdas/store/migrations``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "AliasRow",
    "AsyncRequestRow",
    "Base",
    "DeployProgressRow",
    "DeployRow",
    "EnvironmentBuildRow",
    "EnvironmentRow",
    "EventRow",
    "ServiceRow",
    "VersionRow",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class ServiceRow(Base):
    __tablename__ = "services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    versions: Mapped[list[VersionRow]] = relationship(
        back_populates="service", order_by="VersionRow.number"
    )
    aliases: Mapped[list[AliasRow]] = relationship(back_populates="service")


class VersionRow(Base):
    """An immutable deployment of a service: code, pinned run, environment, definition."""

    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("service_id", "number", name="uq_versions_service_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    code_digest: Mapped[str] = mapped_column(String(80))
    artifact_run: Mapped[str | None] = mapped_column(String(255))
    environment_digest: Mapped[str] = mapped_column(String(80))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))  # deploying | ready | failed | undeployed
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    service: Mapped[ServiceRow] = relationship(back_populates="versions")


class AliasRow(Base):
    """A movable name (``production``, ``staging``...) pointing at one version."""

    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("service_id", "name", name="uq_aliases_service_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    service: Mapped[ServiceRow] = relationship(back_populates="aliases")
    version: Mapped[VersionRow] = relationship()


class EventRow(Base):
    """The audit trail: every deploy, promote, rollback, undeploy, audit result."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_service_created", "service_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    version_number: Mapped[int | None] = mapped_column(Integer)
    alias: Mapped[str | None] = mapped_column(String(63))
    previous_version_number: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeployRow(Base):
    """A version's deploy as a state machine any process can advance: what was asked,
    where it is (``phase``), by when it must run, and who is working on it (a lease)."""

    __tablename__ = "deploys"
    __table_args__ = (Index("ix_deploys_phase", "phase"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("versions.id", ondelete="CASCADE"), unique=True
    )
    phase: Mapped[str] = mapped_column(String(16))  # recorded | starting | promoting | done
    promote: Mapped[bool] = mapped_column(Boolean)
    alias: Mapped[str] = mapped_column(String(63))
    allow_breaking: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(255))
    deadline: Mapped[datetime] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()  # a process is taking a step
    last_status: Mapped[str | None] = mapped_column(Text)  # the compute's last reported line
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()

    version: Mapped[VersionRow] = relationship()


class DeployProgressRow(Base):
    """One line of a deploy's progress, in order."""

    __tablename__ = "deploy_progress"
    __table_args__ = (Index("ix_deploy_progress_deploy", "deploy_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deploy_id: Mapped[int] = mapped_column(ForeignKey("deploys.id", ondelete="CASCADE"))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AsyncRequestRow(Base):
    """One asynchronous request: where it is, what ran it, where its payload and result are."""

    __tablename__ = "async_requests"
    __table_args__ = (
        UniqueConstraint("service", "idempotency_key", name="uq_async_requests_idempotency"),
        # The sweeps' paths: unfinished requests by id (settling), finished ones by expiry
        # (expiry, callbacks); expired rows stay, so the status comes first.
        Index("ix_async_requests_status_id", "status", "id"),
        Index("ix_async_requests_status_expires", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    service: Mapped[str] = mapped_column(String(63))
    endpoint: Mapped[str] = mapped_column(String(63))
    target: Mapped[str] = mapped_column(String(63))  # alias or version ref asked for
    version_number: Mapped[int | None] = mapped_column(Integer)  # the version that ran it
    run: Mapped[str | None] = mapped_column(String(255))  # the pinned run that ran it
    status: Mapped[str] = mapped_column(String(16))  # queued|running|succeeded|failed|expired
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    callback_url: Mapped[str | None] = mapped_column(Text)
    timeout_seconds: Mapped[float] = mapped_column(Float)
    payload_key: Mapped[str] = mapped_column(String(255))
    result_key: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    callback_status: Mapped[str | None] = mapped_column(String(16))  # delivered | gave_up
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()


class EnvironmentRow(Base):
    """One revision of a named environment: its requirements, immutable once written."""

    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("name", "revision", name="uq_environments_revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    revision: Mapped[int] = mapped_column(Integer)
    requirements: Mapped[str] = mapped_column(Text)  # pip requirements, one per line
    source: Mapped[str] = mapped_column(Text)  # where they came from, as given
    actor: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EnvironmentBuildRow(Base):
    """The build of one environment digest: at most one runs at a time (the primary key)."""

    __tablename__ = "environment_builds"

    digest: Mapped[str] = mapped_column(String(80), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # building | built | failed
    runner: Mapped[str | None] = mapped_column(Text)  # what runs it (pid, ECS task ARN)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
