"""flowlib-perf config: GlobusComputeExecutor on the local stand-ins of the test suite.

The real SDK ``Executor`` and result watcher, a real RabbitMQ and the real endpoint engine,
with the web service faked (tests/gce/); needs ``tests/services/rabbitmq-up.sh`` and
``tests/services/globus-endpoint-up.sh``. Usage::

    flowlib-perf --config benchmarks/configs/globus_compute_local.py --workloads latency,chain
"""

import sys
import tempfile
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[2] / "tests")
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from gce.harness import make_executor  # noqa: E402

from flowlib.config import Config  # noqa: E402

config = Config(executors=[make_executor(Path(tempfile.mkdtemp(prefix="flowlib-perf-gce-")))])
