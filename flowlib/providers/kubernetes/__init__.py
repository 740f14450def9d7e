"""KubernetesProvider, importable from ``flowlib.providers.kubernetes`` and, like Parsl's
module path, from ``flowlib.providers.kubernetes.kube`` (where the code lives)."""

from flowlib.providers.kubernetes.kube import JOB_LABEL, POD_PHASES, KubernetesProvider

__all__ = ["JOB_LABEL", "KubernetesProvider", "POD_PHASES"]
