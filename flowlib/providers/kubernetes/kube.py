"""KubernetesProvider: each block is a set of pods running the worker command.

::

    flowlib (this process)                     Kubernetes API server            cluster nodes
    KubernetesProvider --HTTPS (kubernetes client)--> POST /api/v1/namespaces/NS/pods --> pod(s) of block
                       <-- GET  .../pods?labelSelector=flowlib-job-id in (...) -- phase of each pod
                       --> DELETE .../pods/NAME (cancel)

A block of ``nodes_per_block`` nodes is ``nodes_per_block`` pods that share the
label ``flowlib-job-id=<job id>``; the job id is the name of the block's pod
(with several, the prefix of their names: ``<job id>-0``, ``<job id>-1``, ...).
Each pod runs ``/bin/bash -c '<worker_init>\\n<command>'`` in ``image``, is never
restarted, requests ``init_cpu``/``init_mem`` and is limited to ``max_cpu``/``max_mem``.

The official ``kubernetes`` client (the ``[kubernetes]`` extra) is imported on the
first call that needs it. The connection comes from ``api_client`` when given,
otherwise from the in-cluster service account, otherwise from ``~/.kube/config``
(``$KUBECONFIG``); nothing is loaded before the first submit/status/cancel.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from flowlib.errors import OptionalModuleMissing
from flowlib.extras import require
from flowlib.jobs.states import JobState, JobStatus
from flowlib.providers.base import ExecutionProvider
from flowlib.providers.cluster_checks import validate_common
from flowlib.providers.errors import ExecutionProviderException, SchedulerCommandError, SubmitException
from flowlib.validation import validate_arguments

logger = logging.getLogger(__name__)

# validate_common checks the keywords shared with the scheduler providers; these are not ours.
_NOT_A_SCHEDULER = {**dict.fromkeys(("channel", "walltime", "launcher", "move_files")), "scheduler_options": ""}

__all__ = ["KubernetesProvider", "POD_PHASES"]

JOB_LABEL = "flowlib-job-id"
"""The label that ties a block's pods together; its value is the job id."""

POD_PHASES: dict[str, JobState] = {
    # https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-phase
    "Pending": JobState.PENDING,  # accepted; containers not all created yet (scheduling, image pull)
    "Running": JobState.RUNNING,  # bound to a node; at least one container running
    "Succeeded": JobState.COMPLETED,  # all containers terminated in success, will not restart
    "Failed": JobState.FAILED,  # all containers terminated, at least one in failure
    "Unknown": JobState.UNKNOWN,  # the state of the pod could not be obtained (node unreachable)
}
"""Pod phase -> JobState, from the Kubernetes documentation of the pod lifecycle."""

# Waiting reasons (container states, same page) that never clear up by themselves.
_FATAL_WAITING = frozenset({"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"})

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?([EPTGMk]i?|Ki|m|[eE][0-9]+)?$")
_DNS_LABEL_BAD = re.compile(r"[^a-z0-9-]+")


def _kubernetes() -> tuple[Any, Any]:
    """Import the kubernetes client lazily; OptionalModuleMissing names the extra."""
    try:
        from kubernetes import client, config
    except ImportError as exc:
        raise OptionalModuleMissing(
            ["kubernetes"], f"KubernetesProvider needs the kubernetes client: pip install 'flowlib[kubernetes]' ({exc})"
        ) from exc
    return client, config


def _combine(states: list[JobState]) -> JobState:
    """One state for a block from the states of its pods (or instances)."""
    if not states:
        return JobState.MISSING
    for state in (JobState.FAILED, JobState.RUNNING, JobState.PENDING, JobState.HELD, JobState.UNKNOWN):
        if state in states:
            return state
    return JobState.CANCELLED if JobState.CANCELLED in states else JobState.COMPLETED


class KubernetesProvider(ExecutionProvider):
    """Blocks as pods on a Kubernetes cluster (keywords as Parsl's KubernetesProvider, plus ``api_client``).

    ``persistent_volumes`` is a list of ``(claim_name, mount_path)``; ``secret`` names an
    image-pull secret; ``user_id``/``group_id``/``run_as_non_root`` form the container's
    security context. ``api_client`` (a ``kubernetes.client.ApiClient``) replaces the
    default configuration loading, e.g. for a cluster reached with custom credentials.
    """

    def __init__(
        self,
        image: str,
        namespace: str = "default",
        nodes_per_block: int = 1,
        init_blocks: int = 4,
        min_blocks: int = 0,
        max_blocks: int = 10,
        max_cpu: float = 1,
        max_mem: str = "500Mi",
        init_cpu: float = 1,
        init_mem: str = "250Mi",
        parallelism: float = 1,
        worker_init: str = "",
        pod_name: str | None = None,
        user_id: str | int | None = None,
        group_id: str | int | None = None,
        run_as_non_root: bool = False,
        secret: str | None = None,
        persistent_volumes: Sequence[tuple[str, str]] = (),
        service_account_name: str | None = None,
        annotations: dict[str, str] | None = None,
        extra_labels: dict[str, str] | None = None,
        cmd_timeout: float = 30.0,
        api_client: Any = None,
    ) -> None:
        require("KubernetesProvider", "kubernetes", ["kubernetes"], ["kubernetes"])
        validate_common("KubernetesProvider", {"label": "", **_NOT_A_SCHEDULER, **locals()})
        validate_arguments(
            "KubernetesProvider",
            {
                "image": (image, str),
                "namespace": (namespace, str),
                "max_cpu": (max_cpu, float),
                "max_mem": (max_mem, str),
                "init_cpu": (init_cpu, float),
                "init_mem": (init_mem, str),
                "pod_name": (pod_name, str | None),
                "user_id": (user_id, str | int | None),
                "group_id": (group_id, str | int | None),
                "run_as_non_root": (run_as_non_root, bool),
                "secret": (secret, str | None),
                "persistent_volumes": (persistent_volumes, Sequence[tuple[str, str]]),
                "service_account_name": (service_account_name, str | None),
                "annotations": (annotations, dict[str, str] | None),
                "extra_labels": (extra_labels, dict[str, str] | None),
            },
        )
        if not image:
            raise ValueError("KubernetesProvider argument 'image' must name a container image, got ''")
        for name, value in (("max_mem", max_mem), ("init_mem", init_mem)):
            if not _QUANTITY.match(value):
                raise ValueError(
                    f"KubernetesProvider argument {name!r} must be a Kubernetes quantity like '500Mi', got {value!r}"
                )
        for name, number in (("max_cpu", max_cpu), ("init_cpu", init_cpu)):
            if number <= 0:
                raise ValueError(f"KubernetesProvider argument {name!r} must be > 0, got {number!r}")
        for name, ident in (("user_id", user_id), ("group_id", group_id)):
            if ident is not None and not str(ident).isdigit():
                raise ValueError(f"KubernetesProvider argument {name!r} must be a numeric id, got {ident!r}")
        self.image = image
        self.namespace = namespace
        self.nodes_per_block = nodes_per_block
        self.init_blocks = init_blocks
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        self.max_cpu = max_cpu
        self.max_mem = max_mem
        self.init_cpu = init_cpu
        self.init_mem = init_mem
        self.parallelism = parallelism
        self.worker_init = worker_init
        self.pod_name = pod_name
        self.user_id = user_id
        self.group_id = group_id
        self.run_as_non_root = run_as_non_root
        self.secret = secret
        self.persistent_volumes = [tuple(pair) for pair in persistent_volumes]
        self.service_account_name = service_account_name
        self.annotations = dict(annotations or {})
        self.extra_labels = dict(extra_labels or {})
        self.cmd_timeout = cmd_timeout
        self.api_client = api_client
        self.launcher = None
        self.label = "kubernetes"
        self.resources: dict[str, dict[str, Any]] = {}
        """Job id -> {"pods": [names], "status": JobStatus, "cancelled": bool}."""
        self._lock = threading.Lock()
        self._core: Any = None

    # -- connection -------------------------------------------------------------------------

    def _core_api(self) -> Any:
        if self._core is None:
            client, config = _kubernetes()
            api_client = self.api_client
            if api_client is None:
                try:
                    config.load_incluster_config()
                except config.ConfigException:
                    try:
                        config.load_kube_config()
                    except (config.ConfigException, OSError) as exc:
                        raise ExecutionProviderException(
                            "KubernetesProvider found no cluster configuration: not inside a pod and no "
                            f"usable kubeconfig ($KUBECONFIG or ~/.kube/config): {exc}"
                        ) from exc
                api_client = client.ApiClient()
            self._core = client.CoreV1Api(api_client)
        return self._core

    # -- submit -------------------------------------------------------------------------------

    def _new_job_id(self, job_name: str) -> str:
        base = f"{self.pod_name or 'flowlib'}-{job_name}".lower()
        base = _DNS_LABEL_BAD.sub("-", base).strip("-")[:48].strip("-") or "flowlib"
        return f"{base}-{uuid.uuid4().hex[:8]}"

    def _pod_body(self, client: Any, pod: str, job_id: str, command: str) -> Any:
        labels = {**self.extra_labels, JOB_LABEL: job_id, "app": job_id}
        security = None
        if self.user_id is not None or self.group_id is not None or self.run_as_non_root:
            security = client.V1SecurityContext(
                run_as_user=int(self.user_id) if self.user_id is not None else None,
                run_as_group=int(self.group_id) if self.group_id is not None else None,
                run_as_non_root=self.run_as_non_root or None,
            )
        volumes = [
            client.V1Volume(
                name=f"vol-{i}", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(claim_name=claim)
            )
            for i, (claim, _) in enumerate(self.persistent_volumes)
        ]
        mounts = [
            client.V1VolumeMount(name=f"vol-{i}", mount_path=path)
            for i, (_, path) in enumerate(self.persistent_volumes)
        ]
        script = f"{self.worker_init}\n{command}\n" if self.worker_init else f"{command}\n"
        container = client.V1Container(
            name="flowlib-worker",
            image=self.image,
            command=["/bin/bash", "-c"],
            args=[script],
            resources=client.V1ResourceRequirements(
                limits={"cpu": str(self.max_cpu), "memory": self.max_mem},
                requests={"cpu": str(self.init_cpu), "memory": self.init_mem},
            ),
            security_context=security,
            volume_mounts=mounts or None,
        )
        spec = client.V1PodSpec(
            containers=[container],
            restart_policy="Never",
            volumes=volumes or None,
            service_account_name=self.service_account_name,
            image_pull_secrets=[client.V1LocalObjectReference(name=self.secret)] if self.secret else None,
        )
        meta = client.V1ObjectMeta(
            name=pod, namespace=self.namespace, labels=labels, annotations=self.annotations or None
        )
        return client.V1Pod(api_version="v1", kind="Pod", metadata=meta, spec=spec)

    def submit(self, command: str, tasks_per_node: int, job_name: str = "flowlib.auto") -> str:
        """Create the block's pods; return the job id (the first pod's name)."""
        client, _ = _kubernetes()
        core = self._core_api()
        job_id = self._new_job_id(job_name)
        pods = [job_id] if self.nodes_per_block == 1 else [f"{job_id}-{i}" for i in range(self.nodes_per_block)]
        created: list[str] = []
        for pod in pods:
            try:
                core.create_namespaced_pod(
                    self.namespace, self._pod_body(client, pod, job_id, command), _request_timeout=self.cmd_timeout
                )
            except Exception as exc:  # ApiException, connection and timeout errors alike
                for name in created:
                    self._delete_pod(name)
                raise SubmitException(
                    job_name, f"cannot create pod {pod} in namespace {self.namespace}: {_describe(exc)}"
                ) from exc
            created.append(pod)
        with self._lock:
            self.resources[job_id] = {"pods": pods, "status": JobStatus(JobState.PENDING), "cancelled": False}
        logger.debug("submitted block %s as pods %s", job_id, pods)
        return job_id

    # -- status -------------------------------------------------------------------------------

    def status(self, job_ids: list[str]) -> list[JobStatus]:
        """Translate the phase of each block's pods (one list call per 50 jobs)."""
        with self._lock:
            open_ids = [j for j in job_ids if not _known_terminal(self.resources.get(j))]
        found: dict[str, list[Any]] = {j: [] for j in open_ids}
        core: Any = self._core_api() if open_ids else None
        for start in range(0, len(open_ids), 50):
            chunk = open_ids[start : start + 50]
            selector = f"{JOB_LABEL} in ({','.join(chunk)})"
            try:
                answer = core.list_namespaced_pod(
                    self.namespace, label_selector=selector, _request_timeout=self.cmd_timeout
                )
            except Exception as exc:
                raise SchedulerCommandError(f"list pods in {self.namespace} ({selector})", _describe(exc)) from exc
            for pod in answer.items or []:
                owner = (pod.metadata.labels or {}).get(JOB_LABEL)
                if owner in found:
                    found[owner].append(pod)
        with self._lock:
            for job_id in open_ids:
                entry = self.resources.setdefault(job_id, {"pods": [], "status": None, "cancelled": False})
                entry["status"] = self._block_status(found[job_id], entry["cancelled"])
            return [self.resources[j]["status"] for j in job_ids]

    @staticmethod
    def _block_status(pods: list[Any], cancelled: bool) -> JobStatus:
        if not pods:
            if cancelled:
                return JobStatus(JobState.CANCELLED, "pods deleted by flowlib")
            return JobStatus(JobState.MISSING, "no pod with this job id exists in the namespace")
        states, messages, exit_code = [], [], None
        for pod in pods:
            phase = pod.status.phase if pod.status else None
            state = POD_PHASES.get(phase or "", JobState.UNKNOWN)
            for container in (pod.status.container_statuses if pod.status else None) or []:
                waiting = container.state.waiting if container.state else None
                done = container.state.terminated if container.state else None
                if waiting is not None and waiting.reason:
                    messages.append(f"{pod.metadata.name}: {waiting.reason}: {waiting.message or ''}".strip(": "))
                    if waiting.reason in _FATAL_WAITING:
                        state = JobState.FAILED
                if done is not None:
                    exit_code = done.exit_code if exit_code in (None, 0) else exit_code
                    if done.exit_code:
                        messages.append(f"{pod.metadata.name}: {done.reason or 'exited'} with code {done.exit_code}")
            if pod.metadata.deletion_timestamp is not None and cancelled:
                state = JobState.CANCELLED
            if state is JobState.FAILED and pod.status and pod.status.message:
                messages.append(f"{pod.metadata.name}: {pod.status.message}")
            states.append(state)
        return JobStatus(_combine(states), "; ".join(messages) or None, exit_code)

    # -- cancel -------------------------------------------------------------------------------

    def _delete_pod(self, name: str) -> bool:
        try:
            self._core_api().delete_namespaced_pod(
                name, self.namespace, grace_period_seconds=0, _request_timeout=self.cmd_timeout
            )
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return True
            logger.warning("cannot delete pod %s in namespace %s: %s", name, self.namespace, _describe(exc))
            return False
        return True

    def cancel(self, job_ids: list[str]) -> list[bool]:
        """Delete every pod of each block; a pod that is already gone counts as deleted."""
        results = []
        for job_id in job_ids:
            with self._lock:
                entry = self.resources.setdefault(job_id, {"pods": [job_id], "status": None, "cancelled": False})
                pods = list(entry["pods"]) or [job_id]
            ok = all([self._delete_pod(pod) for pod in pods])
            with self._lock:
                entry["cancelled"] = entry["cancelled"] or ok
                if ok:
                    entry["status"] = JobStatus(JobState.CANCELLED, "pods deleted by flowlib")
            results.append(ok)
        return results


def _known_terminal(entry: dict[str, Any] | None) -> bool:
    return entry is not None and entry["status"] is not None and entry["status"].terminal


def _describe(exc: BaseException) -> str:
    """A one-line description of a client error: HTTP status and the API server's message."""
    status = getattr(exc, "status", None)
    if status is not None:
        body = getattr(exc, "body", None) or ""
        match = re.search(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)"', body if isinstance(body, str) else "")
        detail = match.group(1) if match else (getattr(exc, "reason", None) or body)
        return f"HTTP {status}: {detail}"
    return f"{type(exc).__name__}: {exc}"
