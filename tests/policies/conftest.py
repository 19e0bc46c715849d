"""Makes the policy pack importable as ``policies`` (see ``loader.py``)."""

from tests.policies.loader import load_policy_pack

load_policy_pack()
