"""Named environments: immutable revisions of requirements, registered by name.

``Environment(name="sentiment-train")`` in a service refers to the latest revision of
that name when the version is deployed; ``"sentiment-train@3"`` to revision 3. A revision
never changes once written: registering different requirements makes the next revision,
registering the latest's requirements again returns the latest. Registrations of one name
take turns (SQLite's write lock; a PostgreSQL advisory lock per name), and the unique
``(name, revision)`` constraint holds even without them: two registrations never share
a number (the loser retries once, on top of the winner).

Requirements are pip requirement lines in a form the platform states in its OpenAPI
document (:data:`REQUIREMENTS_PATTERN`): a name, extras, version clauses and simple
environment markers; comments and blank lines are dropped. Options (``-r``, ``-e``,
``--index-url``) are refused: the platform's package index is set in its stack.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import TypeVar

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy import text as sql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flowhost.errors import FlowhostError, NotFoundError
from flowhost.lambdas.store.models import EnvironmentRow
from flowhost.lambdas.store.records import UtcDatetime
from flowhost.lambdas.store.sessions import Transactions
from flowhost.services.compile import SERVICE_NAME

__all__ = [
    "ENVIRONMENT_NAME",
    "MAX_REQUIREMENTS",
    "REQUIREMENTS_PATTERN",
    "EnvironmentConflict",
    "EnvironmentNotFound",
    "EnvironmentRegistry",
    "EnvironmentRevision",
    "InvalidEnvironment",
    "check_name",
    "environment_ref",
    "normalise_requirements",
]

ENVIRONMENT_NAME = SERVICE_NAME  # a DNS-safe slug, as service names are
MAX_REQUIREMENTS = 65536  # characters of requirements text
REGISTER = "flowhost env register {name} --from requirements.txt"  # the fix, in messages

# One requirement line, in the form the platform accepts (a subset of PEP 508 every line
# of which ``packaging`` parses): no URLs, no options; markers compare a few variables.
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?"
_RELEASE = r"[0-9]{1,9}(?:\.[0-9]{1,9}){0,5}"
_SUFFIX = r"(?:(?:a|b|rc)[0-9]{1,9})?(?:\.post[0-9]{1,9})?(?:\.dev[0-9]{1,9})?"
_LOCAL = r"(?:\+[a-z0-9]{1,16}(?:\.[a-z0-9]{1,16}){0,3})?"
_CLAUSE = (
    rf"(?:(?:==|!=) *(?:{_RELEASE}\.\*|{_RELEASE}{_SUFFIX}{_LOCAL})"
    rf"|(?:>=|<=|>|<) *{_RELEASE}{_SUFFIX}"
    rf"|~= *[0-9]{{1,9}}(?:\.[0-9]{{1,9}}){{1,5}}{_SUFFIX})"
)
_MARKER_VARIABLE = (
    r"(?:python_version|python_full_version|sys_platform|platform_machine|platform_system"
    r"|os_name|implementation_name)"
)
_MARKER_TEST = rf'{_MARKER_VARIABLE} *(?:==|!=|<=|>=|<|>) *"[0-9A-Za-z._-]{{1,32}}"'
_REQUIREMENT = (
    rf"{_NAME}(?: *\[ *{_NAME}(?: *, *{_NAME}){{0,9}} *\])?"
    rf"(?: *{_CLAUSE}(?: *, *{_CLAUSE}){{0,4}})?"
    rf"(?: *; *{_MARKER_TEST}(?: +(?:and|or) +{_MARKER_TEST}){{0,3}})?"
)
_COMMENT = r"(?:#[^\n]*)?"
_BLANK_LINE = rf"[ \t\r]*{_COMMENT}"
_REQUIREMENT_LINE = rf"[ \t\r]*{_REQUIREMENT}[ \t\r]*{_COMMENT}"
# The whole text: lines of requirements, comments and blanks, at least one requirement.
REQUIREMENTS_PATTERN = (
    rf"^(?:{_BLANK_LINE}\n)*{_REQUIREMENT_LINE}(?:\n(?:{_REQUIREMENT_LINE}|{_BLANK_LINE}))*$"
)
_ONE = re.compile(_REQUIREMENT)
_EXAMPLE = "e.g. 'scikit-learn>=1.5', 'torch==2.4.1', 'numpy<2; python_version<\"3.12\"'"


class InvalidEnvironment(FlowhostError):
    """A name or requirements the registry cannot take; the message names the line."""

    code = "invalid_environment"
    status = 422


class EnvironmentNotFound(NotFoundError):
    """No environment of that name, or no such revision of it."""

    code = "environment_not_found"


class EnvironmentConflict(FlowhostError):
    """Registrations of one name raced and this one lost twice: nothing was written."""

    code = "environment_conflict"
    status = 409


class EnvironmentRevision(BaseModel):
    """One immutable revision of a named environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    revision: int
    requirements: str  # normalised: one requirement per line, in the order given
    source: str  # where they came from, as the registering client described it
    actor: str
    created_at: UtcDatetime

    @property
    def ref(self) -> str:
        """``name@revision``, the pinned form ``Environment(name=...)`` takes."""
        return f"{self.name}@{self.revision}"


def check_name(name: str) -> str:
    """``name`` if it is a DNS-safe slug, else ``InvalidEnvironment`` saying the rule."""
    if not ENVIRONMENT_NAME.fullmatch(name):
        raise InvalidEnvironment(
            "environment name: must be a DNS-safe slug: lowercase letters, digits and '-', "
            f"starting with a letter, at most 63 characters (got {name!r}). "
            "For example 'sentiment-train'."
        )
    return name


def environment_ref(value: str) -> tuple[str, int | None]:
    """``"sentiment-train"`` -> (name, None: the latest); ``"sentiment-train@3"`` -> 3."""
    name, at, revision = value.partition("@")
    check_name(name)
    if not at:
        return name, None
    if not revision.isdigit() or int(revision) < 1:
        raise InvalidEnvironment(
            f"environment {value!r}: the revision after '@' must be a number from 1 (got "
            f"{revision!r}). Write '{name}' for the latest or '{name}@3' for revision 3."
        )
    return name, int(revision)


def _line_problem(line: str) -> str | None:
    """Why one stripped, comment-free line is not accepted (None: it is)."""
    if line.startswith("-"):
        option = line.split()[0].split("=")[0]
        if "index" in option or option in ("-i", "-f", "--find-links"):
            return (
                f"a pip option ({option}), which the platform does not take: its package "
                "index is configured in the platform stack"
            )
        return (
            f"a pip option ({option}), which the platform does not take: list the packages "
            "themselves"
        )
    try:
        Requirement(line)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0]
        return f"not a requirement ({reason}); write 'name[extras] specifier', {_EXAMPLE}"
    if not _ONE.fullmatch(line):
        return (
            "a form the platform does not take (URLs, '===' and markers beyond simple "
            f"comparisons of python_version, sys_platform... are refused); {_EXAMPLE}"
        )
    return None


def normalise_requirements(text: str, *, origin: str = "requirements") -> str:
    """The requirement lines of ``text``, stripped, without comments and blank lines, in
    order, one per line; ``InvalidEnvironment`` naming the first bad line (``origin``
    says where the text came from)."""
    if len(text) > MAX_REQUIREMENTS:
        raise InvalidEnvironment(
            f"{origin}: {len(text)} characters, more than {MAX_REQUIREMENTS}. "
            "List only the packages the service imports; pins of their dependencies are "
            "locked by the platform."
        )
    lines: list[str] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.split("#", 1)[0].strip(" \t\r")
        if not line:
            continue
        problem = _line_problem(line)
        if problem is not None:
            raise InvalidEnvironment(f"{origin} line {number}: {line!r} is {problem}.")
        lines.append(line)
    if not lines:
        raise InvalidEnvironment(
            f"{origin}: no requirements (only blank lines and comments). List at least one "
            f"package, {_EXAMPLE}."
        )
    return "\n".join(lines)


def _lock_key(name: str) -> int:
    """The PostgreSQL advisory lock that takes registrations of ``name`` one at a time."""
    digest = hashlib.sha256(f"flowhost environment {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _revision(row: EnvironmentRow) -> EnvironmentRevision:
    return EnvironmentRevision(
        name=row.name, revision=row.revision, requirements=row.requirements,
        source=row.source, actor=row.actor, created_at=row.created_at,
    )  # fmt: skip


T = TypeVar("T")


class EnvironmentRegistry(Transactions):
    """Named environments on the platform's database (the StateStore's engine)."""

    @staticmethod
    def _latest(s: Session, name: str) -> EnvironmentRow | None:
        return s.scalars(
            select(EnvironmentRow)
            .where(EnvironmentRow.name == name)
            .order_by(EnvironmentRow.revision.desc())
            .limit(1)
        ).one_or_none()

    def _retrying(self, name: str, attempt: Callable[[], T]) -> T:
        """``attempt()``; once more if another registration took its number first, and
        ``EnvironmentConflict`` if one did again."""
        try:
            return attempt()
        except IntegrityError:
            pass
        try:
            return attempt()
        except IntegrityError:
            raise EnvironmentConflict(
                f"environment {name!r}: other registrations took the next revision twice "
                "while this one was being written; nothing was registered. Register again."
            ) from None

    def put(
        self, name: str, requirements: str, source: str, actor: str
    ) -> tuple[EnvironmentRevision, bool]:
        """The revision these requirements are, and whether it was created now (False:
        the latest already had them)."""
        check_name(name)
        text = normalise_requirements(requirements)

        def attempt() -> tuple[EnvironmentRevision, bool]:
            with self._tx() as s:
                if s.get_bind().dialect.name == "postgresql":  # SQLite: BEGIN IMMEDIATE
                    s.execute(sql("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(name)})
                latest = self._latest(s, name)
                if latest is not None and latest.requirements == text:
                    return _revision(latest), False
                row = EnvironmentRow(
                    name=name, revision=1 if latest is None else latest.revision + 1,
                    requirements=text, source=source, actor=actor,
                )  # fmt: skip
                s.add(row)
                s.flush()  # the unique (name, revision) is checked here, in the retry
                return _revision(row), True

        return self._retrying(name, attempt)

    def register(
        self, name: str, requirements: str, source: str, actor: str
    ) -> EnvironmentRevision:
        """A new revision of ``name`` (1, 2, ...), unless the latest has these requirements
        (after normalising), in which case the latest."""
        return self.put(name, requirements, source, actor)[0]

    def get(self, name: str, revision: int | None = None) -> EnvironmentRevision:
        """The latest revision of ``name``, or revision ``revision``;
        ``EnvironmentNotFound`` naming what exists and the fix."""
        with self._read() as s:
            if revision is None:
                row = self._latest(s, name)
            else:
                row = s.scalars(
                    select(EnvironmentRow).where(
                        EnvironmentRow.name == name, EnvironmentRow.revision == revision
                    )
                ).one_or_none()
            if row is not None:
                return _revision(row)
            latest = s.scalar(
                select(func.max(EnvironmentRow.revision)).where(EnvironmentRow.name == name)
            )
        if latest is None:
            raise EnvironmentNotFound(
                f"environment {name!r}: not registered on this platform. Register it with "
                f"'{REGISTER.format(name=name)}', or see 'flowhost env list'."
            )
        raise EnvironmentNotFound(
            f"environment {name!r}: no revision {revision} (revisions 1 to {latest}). Give a "
            f"revision that exists, e.g. '{name}@{latest}', or '{name}' for the latest."
        )

    def names(self) -> list[EnvironmentRevision]:
        """The latest revision of each environment, by name."""
        with self._read() as s:
            newest = (
                select(EnvironmentRow.name, func.max(EnvironmentRow.revision).label("revision"))
                .group_by(EnvironmentRow.name)
                .subquery()
            )
            rows = s.scalars(
                select(EnvironmentRow)
                .join(
                    newest,
                    (EnvironmentRow.name == newest.c.name)
                    & (EnvironmentRow.revision == newest.c.revision),
                )
                .order_by(EnvironmentRow.name)
            )
            return [_revision(r) for r in rows]

    def revisions(self, name: str) -> list[EnvironmentRevision]:
        """Every revision of ``name``, oldest first; ``EnvironmentNotFound`` if none."""
        with self._read() as s:
            rows = list(
                s.scalars(
                    select(EnvironmentRow)
                    .where(EnvironmentRow.name == name)
                    .order_by(EnvironmentRow.revision)
                )
            )
        if not rows:
            self.get(name)  # raises, naming the fix
        return [_revision(r) for r in rows]
