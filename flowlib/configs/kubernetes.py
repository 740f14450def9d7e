"""A Kubernetes cluster: each block is a pod running one worker pool.

::

    from flowlib.configs.kubernetes import fresh_config
    config = fresh_config(image="registry.example.org/me/flowlib-worker:1.0", namespace="science")

Assumes:

- ``image`` is a container image with bash, Python and the same flowlib version
  as this script (and every package your apps import). The default,
  :data:`IMAGE_PLACEHOLDER`, does not exist: replace it.
- This script runs inside the cluster (in a pod), so that worker pods can connect
  back to it: the executor listens on every interface and the pools try each of
  this machine's addresses. From outside the cluster, give the executor an
  ``address`` the pods can reach (build the Config yourself).
- The Kubernetes client (``pip install 'flowlib[kubernetes]'``) finds its
  credentials: the pod's service account (it must be allowed to create, list and
  delete pods in ``namespace``) or ``~/.kube/config``. Nothing is contacted
  before the first block is requested.

Each pod asks for and is limited to ``cpu`` CPUs and ``memory``; its pool runs
one worker per CPU.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.providers.kubernetes import KubernetesProvider

__all__ = ["IMAGE_PLACEHOLDER", "config", "fresh_config"]

IMAGE_PLACEHOLDER = "registry.example.org/your-image-with-flowlib:latest"
"""Not a real image: the name to replace with your own."""


def fresh_config(
    *,
    image: str = IMAGE_PLACEHOLDER,
    namespace: str = "default",
    cpu: float = 1.0,
    memory: str = "2Gi",
    max_blocks: int = 4,
    worker_init: str = "",
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"htex_kubernetes"`` on a KubernetesProvider.

    :param image: the worker pods' container image (must have flowlib installed).
    :param namespace: the namespace the pods are created in.
    :param cpu: CPUs each pod asks for and is limited to.
    :param memory: memory each pod asks for and is limited to (a Kubernetes quantity).
    :param max_blocks: the most pods at once.
    :param worker_init: shell run in each pod before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    provider = KubernetesProvider(
        image=image,
        namespace=namespace,
        init_cpu=float(cpu),
        max_cpu=float(cpu),
        init_mem=memory,
        max_mem=memory,
        init_blocks=1,
        min_blocks=0,
        max_blocks=max_blocks,
        worker_init=worker_init,
    )
    return Config(executors=[HighThroughputExecutor(label="htex_kubernetes", provider=provider)], **config_kwargs)


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
