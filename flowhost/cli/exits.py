"""The exit codes of the ``flowhost`` command: one mapping, in one place.

========  =============================================================================
code      meaning
========  =============================================================================
0         ok
1         the operation failed (a deploy that did not start, the platform unreachable...)
2         usage: a bad option or argument, or a broken targets config
3         not found: a service, version, alias, endpoint or request that does not exist
4         refused: failed audits, or a schema contract the change would break
5         timed out: a deploy or an asynchronous request still running at the deadline
========  =============================================================================

Errors are mapped by their stable ``code`` (the ``code`` of a flowhost error, or of the
API's error body), then by their class; anything else is 1. docs/cli.md documents this.
"""

from __future__ import annotations

from flowhost.errors import FlowhostError, NotFoundError

__all__ = [
    "EXIT_CODES",
    "FAILED",
    "NOT_FOUND",
    "OK",
    "REFUSED",
    "TIMED_OUT",
    "USAGE",
    "UsageError",
    "exit_code_of",
]

OK = 0
FAILED = 1
USAGE = 2
NOT_FOUND = 3
REFUSED = 4
TIMED_OUT = 5


class UsageError(FlowhostError):
    """A command's options or arguments are wrong; the message names the option and the fix."""

    code = "usage"
    status = 400


EXIT_CODES: dict[str, int] = {
    "usage": USAGE,
    "invalid_config": USAGE,  # the targets config file, or a --target it does not name
    "invalid_service_target": USAGE,  # path.py[:Class] names no file or no such class
    "not_found": NOT_FOUND,
    "request_not_found": NOT_FOUND,
    "audit_failed": REFUSED,
    "contract_broken": REFUSED,
    "timed_out": TIMED_OUT,
}


def exit_code_of(exc: FlowhostError) -> int:
    """The exit code of a flowhost error: by its code, else by its class, else 1."""
    by_code = EXIT_CODES.get(exc.code)
    if by_code is not None:
        return by_code
    if isinstance(exc, NotFoundError):
        return NOT_FOUND
    return FAILED
