"""Process limits a server needs before it accepts connections.

Every open connection holds a file descriptor. Under the soft open-files limit many
shells and service managers set (1,024), a thousand idle or slow clients use them all:
``accept`` then fails and every other client is refused, which is a denial of service
anyone can mount. Servers raise the soft limit to the hard one at start (Go's runtime
and nginx's ``worker_rlimit_nofile`` do the same); children inherit it.
"""

from __future__ import annotations

import resource

__all__ = ["OPEN_FILES_CAP", "raise_open_files_limit"]

OPEN_FILES_CAP = 65536  # plenty for one host; a hard limit of millions needs no more


def raise_open_files_limit(cap: int = OPEN_FILES_CAP) -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (at most ``cap``); never lowers
    it. Returns the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # a sandbox may refuse; keep what we have
            return soft
        return target
    return soft
