"""Stand-in for a Globus Compute endpoint process, around the endpoint's real engine.

Runs in the endpoint venv made by tests/services/globus-endpoint-up.sh (the
``globus-compute-endpoint`` package and its dependencies, Parsl among them, are
kept out of flowlib's own venv). What a real endpoint does with a task, this does
with the real ``ThreadPoolEngine``::

    fake web service --AMQP queue <tasks>--> this process --engine.submit--> ThreadPoolEngine
                                              (a Task message, reply_to = the task group's result queue)
    SDK result watcher <--AMQP <reply_to>-- packed Result <--/

Only the hop between the service and the endpoint is simplified: a real endpoint
gets its tasks from the service's broker and sends results back through the
service; here the fake service publishes the Task message itself, naming in
``reply_to`` the result queue the SDK consumes.

Usage: python endpoint_stand_in.py AMQP_URL TASK_QUEUE RUN_DIR. Prints ``ready`` on
stdout once it consumes; stops when stdin closes (its parent exited) or on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import uuid

import pika
from globus_compute_endpoint.engines import ThreadPoolEngine
from globus_compute_endpoint.engines.base import GCFuture


def main() -> int:
    amqp_url, task_queue, run_dir = sys.argv[1:4]
    engine = ThreadPoolEngine(max_workers=4)
    engine.start(endpoint_id=uuid.uuid4(), run_dir=run_dir)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.queue_declare(queue=task_queue, arguments={"x-expires": 600_000})
    channel.basic_qos(prefetch_count=64)

    def publish(reply_to: str, body: bytes) -> None:
        channel.basic_publish(exchange="", routing_key=reply_to, body=body)

    def on_task(ch, method, props, body) -> None:
        headers = props.headers or {}
        spec = json.loads(headers.get("resource_specification") or "null") or {}
        serializers = json.loads(headers.get("result_serializers") or "null") or None
        future = GCFuture(gc_task_id=uuid.UUID(headers["task_id"]))
        reply_to = props.reply_to

        def done(f: GCFuture) -> None:
            # The engine hands back a packed Result (errors included); publish it from pika's thread.
            connection.add_callback_threadsafe(lambda: publish(reply_to, f.result()))

        future.add_done_callback(done)
        engine.submit(future, body, resource_specification=spec, result_serializers=serializers)
        ch.basic_ack(method.delivery_tag)

    def stop(*_: object) -> None:
        connection.add_callback_threadsafe(channel.stop_consuming)

    def watch_stdin() -> None:
        sys.stdin.read()
        stop()

    signal.signal(signal.SIGTERM, lambda *a: stop())
    threading.Thread(target=watch_stdin, daemon=True).start()
    channel.basic_consume(queue=task_queue, on_message_callback=on_task)
    print("ready", flush=True)
    try:
        channel.start_consuming()
    finally:
        engine.shutdown(block=False)
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
