"""Entry point of the platform program (``Pulumi.yaml``: ``main: infra/``)."""

from flowhost.infra.program import main

main()
