"""A local fake of the Globus Compute web service, as far as the SDK's ``Executor`` uses it.

The SDK ``Executor`` talks to the service only through its ``Client``: it registers
functions, builds a batch, runs it, and asks where its result queue is. The fake is a
``create_autospec`` of the real ``Client`` whose methods do what the service does:

    register_function(fn)  keep the function's code, serialized as the real Client does
    create_batch(...)      the real Client.create_batch (the real Batch class)
    batch_run(ep, batch)   declare the task group's result queue on the real RabbitMQ,
                           publish one Task message per task to the endpoint's queue,
                           answer with the task ids
    get_result_amqp_url()  the local RabbitMQ

Everything else is real: the SDK Executor and its AMQP result watcher, the broker, and
the endpoint engine that runs the tasks (endpoint_stand_in.py). ``batches`` records what
each batch carried; ``refuse_batches`` makes batch_run raise, as the service does when
it rejects a submission.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pika
from globus_compute_common import messagepack
from globus_compute_common.messagepack.message_types import Task
from globus_compute_sdk import Client
from globus_compute_sdk.serialize import ComputeSerializer

QUEUE_ARGUMENTS = {"x-expires": 600_000}  # the broker drops a queue unused for 10 minutes


@dataclass(frozen=True)
class BatchRecord:
    """What one ``batch_run`` call carried."""

    endpoint_id: str
    resource_specification: dict[str, Any] | None
    user_endpoint_config: dict[str, Any] | None
    task_count: int


class FakeComputeService:
    """Stands in for the Globus Compute web service; see the module docstring."""

    def __init__(self, amqp_url: str, endpoint_queue: str, queue_prefix: str = "flowlib-test-") -> None:
        self.amqp_url = amqp_url
        self.endpoint_queue = endpoint_queue
        self.queue_prefix = queue_prefix
        self.serializer = ComputeSerializer()
        self.functions: dict[str, str] = {}
        self.batches: list[BatchRecord] = []
        self.refuse_batches: Exception | None = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        """A spec'd ``Client`` whose methods go to this fake service."""
        client = mock.create_autospec(Client, instance=True)
        client.fx_serializer = self.serializer
        client.register_function.side_effect = self._register_function
        client.create_batch.side_effect = lambda *a, **k: Client.create_batch(client, *a, **k)
        client.batch_run.side_effect = self._batch_run
        client.get_result_amqp_url.return_value = {"queue_prefix": self.queue_prefix, "connection_url": self.amqp_url}
        return client

    def _register_function(self, function: Any, *args: Any, **kwargs: Any) -> str:
        function_id = str(uuid.uuid4())
        with self._lock:
            self.functions[function_id] = self.serializer.serialize(function)
        return function_id

    def _batch_run(self, endpoint_id: Any, batch: Any) -> dict[str, Any]:
        if self.refuse_batches is not None:
            raise self.refuse_batches
        data = batch.prepare()
        group = data.get("task_group_id") or str(uuid.uuid4())
        res_spec = data.get("resource_specification")
        headers_common = {
            "resource_specification": json.dumps(res_spec),
            "result_serializers": json.dumps(data.get("result_serializers")),
        }
        reply_to = f"{self.queue_prefix}{group}"
        tasks: dict[str, list[str]] = {}
        count = 0
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            channel = connection.channel()
            channel.queue_declare(queue=reply_to, arguments=QUEUE_ARGUMENTS)
            channel.queue_declare(queue=self.endpoint_queue, arguments=QUEUE_ARGUMENTS)
            for function_id, payloads in data["tasks"].items():
                with self._lock:
                    code = self.functions[function_id]
                for payload in payloads:
                    task_id = uuid.uuid4()
                    args, kwargs = self.serializer.unpack_buffers(payload)
                    body = messagepack.pack(
                        Task(task_id=task_id, task_buffer=self.serializer.pack_buffers([code, args, kwargs]))
                    )
                    properties = pika.BasicProperties(
                        reply_to=reply_to, headers={"task_id": str(task_id), **headers_common}
                    )
                    channel.basic_publish(
                        exchange="", routing_key=self.endpoint_queue, body=body, properties=properties
                    )
                    tasks.setdefault(function_id, []).append(str(task_id))
                    count += 1
        finally:
            connection.close()
        with self._lock:
            self.batches.append(BatchRecord(str(endpoint_id), res_spec, data.get("user_endpoint_config"), count))
        return {
            "request_id": str(uuid.uuid4()),
            "task_group_id": group,
            "endpoint_id": str(endpoint_id),
            "tasks": tasks,
        }
