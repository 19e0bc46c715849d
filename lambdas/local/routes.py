"""The route table: which version each ``service[@alias-or-version]`` reaches.

Held in memory and changed in place by the control plane in the same process, so a
promote is visible to the very next request; the store is the durable copy.
"""

from __future__ import annotations

from flowhost.errors import NotFoundError
from flowhost.lambdas.local.pool import Pool
from flowhost.lambdas.store.records import version_number
from flowhost.lambdas.store.store import PRODUCTION

__all__ = ["RouteTable"]


class RouteTable:
    def __init__(self) -> None:
        self.pools: dict[str, dict[int, Pool]] = {}
        self.aliases: dict[str, dict[str, int]] = {}

    def all_pools(self) -> list[Pool]:
        return [p for versions in self.pools.values() for p in versions.values()]

    def add(self, pool: Pool) -> None:
        self.pools.setdefault(pool.service, {})[pool.number] = pool
        self.aliases.setdefault(pool.service, {})

    def drop(self, service: str, number: int) -> Pool | None:
        return self.pools.get(service, {}).pop(number, None)

    def point(self, service: str, alias: str, number: int) -> None:
        self.aliases.setdefault(service, {})[alias] = number

    def lookup(self, service: str, ref: str | None) -> Pool:
        """The pool ``service@ref`` names (``ref`` defaults to ``production``)."""
        versions = self.pools.get(service)
        if versions is None:
            known = ", ".join(sorted(self.pools)) or "none"
            raise NotFoundError(f"no service {service!r}. Services: {known}.")
        aliases = self.aliases.get(service, {})
        name = ref or PRODUCTION
        number = aliases.get(name)
        if number is None:
            number = version_number(name)
            if number is None:
                if ref is None:
                    raise NotFoundError(
                        f"service {service!r} has no production version yet. Promote one "
                        f"(flowhost promote {service} v<N>) or call {service}@v<N>/..."
                    )
                known = ", ".join(sorted(aliases)) or "none"
                raise NotFoundError(
                    f"service {service!r} has no alias {name!r}. Aliases: {known}; or name a "
                    "version like v1."
                )
        pool = versions.get(number)
        if pool is None:
            known = ", ".join(f"v{n}" for n in sorted(versions)) or "none"
            raise NotFoundError(
                f"service {service!r} has no running version v{number}. Versions: {known}."
            )
        return pool
