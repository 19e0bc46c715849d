"""The flowhost control plane: deployments API, router, activator, scaler, async API.

Runs under uvicorn locally and under Mangum on Lambda. Never imports pulumi.
"""
