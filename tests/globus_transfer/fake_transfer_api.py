"""A local fake of the Globus Transfer API: the calls globus-sdk's TransferClient makes to move a file.

    GET  /v0.10/submission_id      -> {"value": <uuid>}
    POST /v0.10/transfer           -> {"code": "Accepted", "task_id": <uuid>, ...}   (a transfer document)
    GET  /v0.10/task/<id>          -> {"task_id": ..., "status": "ACTIVE" | "SUCCEEDED" | "FAILED", ...}
    POST /v0.10/task/<id>/cancel   -> {"code": "Canceled", ...}

Collections are local directories (``collections``: uuid -> root). A transfer copies
each item at submission and reports ACTIVE for ``active_polls`` status reads before
SUCCEEDED; a missing source file makes the task FAILED with a fatal_error, as the
service does; a destination collection in ``stuck`` stays ACTIVE until cancelled.
Requests without ``Authorization: Bearer <token>`` get 401.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeTransferAPI:
    """Serve on 127.0.0.1 (a free port) until :meth:`close`; ``base_url`` is for TransferClient."""

    def __init__(self, collections: dict[str, str], token: str = "test-token", active_polls: int = 1) -> None:
        self.collections = collections
        self.token = token
        self.active_polls = active_polls
        self.stuck: set[str] = set()
        self.tasks: dict[str, dict[str, Any]] = {}
        self.submissions: list[dict[str, Any]] = []
        self.cancelled: list[str] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api._dispatch(self, "GET")

            def do_POST(self) -> None:
                api._dispatch(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-transfer-api", daemon=True)
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # ----------------------------------------------------------------- HTTP

    def _dispatch(self, request: BaseHTTPRequestHandler, method: str) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self._reply(request, 401, {"code": "AuthenticationFailed", "message": "Token is not valid"})
            return
        length = int(request.headers.get("Content-Length") or 0)
        body = json.loads(request.rfile.read(length) or b"null") if length else None
        parts = request.path.split("?")[0].strip("/").split("/")
        if method == "GET" and parts == ["v0.10", "submission_id"]:
            self._reply(request, 200, {"value": str(uuid.uuid4())})
        elif method == "POST" and parts == ["v0.10", "transfer"]:
            self._reply(request, 202, self._submit(body))
        elif method == "GET" and len(parts) == 3 and parts[:2] == ["v0.10", "task"]:
            task = self._status(parts[2])
            self._reply(request, 200 if task else 404, task or {"code": "TaskNotFound", "message": parts[2]})
        elif method == "POST" and len(parts) == 4 and parts[:2] == ["v0.10", "task"] and parts[3] == "cancel":
            with self._lock:
                self.cancelled.append(parts[2])
                if parts[2] in self.tasks:
                    self.tasks[parts[2]]["status"] = "FAILED"
                    self.tasks[parts[2]]["nice_status"] = "CANCELED"
            self._reply(request, 200, {"code": "Canceled", "message": "The task has been cancelled."})
        else:
            self._reply(request, 404, {"code": "ClientError.NotFound", "message": f"{method} {request.path}"})

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, document: dict[str, Any]) -> None:
        data = json.dumps(document).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    # ---------------------------------------------------------- transfers

    def _local(self, collection: str, path: str) -> str | None:
        root = self.collections.get(collection)
        return None if root is None else os.path.join(root, path.lstrip("/"))

    def _submit(self, document: dict[str, Any]) -> dict[str, Any]:
        task_id = str(uuid.uuid4())
        task: dict[str, Any] = {"task_id": task_id, "status": "ACTIVE", "polls": 0, "fatal_error": None}
        source, destination = document["source_endpoint"], document["destination_endpoint"]
        for item in document.get("DATA", []):
            src = self._local(source, item["source_path"])
            dst = self._local(destination, item["destination_path"])
            if src is None or dst is None or not os.path.isfile(src):
                task["fatal_error"] = {"code": "FILE_NOT_FOUND", "description": f"No such file: {item['source_path']}"}
                continue
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)
        task["stuck"] = destination in self.stuck
        with self._lock:
            self.tasks[task_id] = task
            self.submissions.append(document)
        return {"code": "Accepted", "task_id": task_id, "submission_id": document.get("submission_id")}

    def _status(self, task_id: str) -> dict[str, Any] | None:
        with self._lock:
            task = self.tasks.get(task_id)
            if task is None:
                return None
            task["polls"] += 1
            if task["status"] == "ACTIVE" and not task["stuck"] and task["polls"] > self.active_polls:
                task["status"] = "FAILED" if task["fatal_error"] else "SUCCEEDED"
                if task["fatal_error"]:
                    task["nice_status"] = task["fatal_error"]["code"]
            return {k: v for k, v in task.items() if k not in ("polls", "stuck")}
