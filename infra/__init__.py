"""Pulumi components for the flowhost platform (``Platform``) and its services (``ServiceSpec``)."""
