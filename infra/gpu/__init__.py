"""The platform's EKS side for GPU services: the cluster and its GPU node group
(``cluster``), the add-ons (``addons``: NVIDIA device plugin, KEDA, IRSA) and container
logs (``logs``). It never imports ``flowhost.infra.service``.
"""
