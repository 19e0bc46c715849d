"""flowhost's Pulumi CrossGuard policy pack.

Rules are plain functions in ``policies.rules`` (one module per domain); the offline
engine is ``policies.engine``; ``policies.pack`` adapts the rules to pulumi-policy;
``__main__.py`` alone builds the ``PolicyPack`` (which serves the Pulumi engine and
never returns, so nothing imports it). The pack stands alone: it imports neither
flowhost nor pulumi-aws.
"""
