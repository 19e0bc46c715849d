"""A flowhost service in a user stack: ``ServiceSpec`` and its parts.

For a CPU service, the envelope the stack owns: roles (``roles``), log group and Fargate
size (``fargate``), the envelope parameter (``envelope``), dashboard and alarms
(``dashboard``, ``grafana``), and code deployed through the control plane (``deploy``).
For a GPU service, the one version its stack runs on EKS: queues (``queues``), the
workload (``workload``, ``pod``) and its dashboard (``observability``). Shared:
the code package and the container environment (``package``), the checks
(``validation``). Imports point one way: ``service`` -> ``gpu`` -> the platform's
shared modules (``flowhost.infra.iam``, ``tags``, ``platform_ref``, ...).
"""
