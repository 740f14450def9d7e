"""A small parameter sweep on flowlib's local thread pool.

Run it with ``make demo`` (or ``.venv/bin/python examples/demo.py``). It shows,
in one workflow:

* a ``python_app`` run once per parameter (count the primes below a limit);
* a ``bash_app`` that writes each result to a file named in ``outputs=``;
* a ``python_app`` that reads all those files through ``inputs=``;
* a ``join_app`` that decides at run time which extra tasks to launch;
* a task that fails on its first try and succeeds when the kernel retries it;
* a cached call (``cache=True``) made twice, where the second call is a cache hit.

Everything happens in a temporary directory that is removed at the end. The
script checks every result and exits with status 1 if any is wrong.
"""

from __future__ import annotations

import itertools
import shlex
import sys
import tempfile
import time
from pathlib import Path

import flowlib
from flowlib import Config, File, ThreadPoolExecutor, bash_app, join_app, python_app

LIMITS = [1000, 2000, 3000, 4000, 5000, 6000]


@python_app
def count_primes(limit: int) -> int:
    """Number of primes below ``limit`` (sieve of Eratosthenes)."""
    if limit < 3:
        return 0
    sieve = bytearray([1]) * limit
    sieve[0] = sieve[1] = 0
    for n in range(2, int(limit**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytearray(len(range(n * n, limit, n)))
    return sum(sieve)


@bash_app
def write_result(limit: int, count: int, outputs: list[File] | None = None) -> str:
    """Write one line ``<limit> <count>`` to the file given as ``outputs[0]``."""
    assert outputs is not None
    return f"echo {limit} {count} > {shlex.quote(outputs[0].filepath)}"


@python_app
def collect(inputs: list[File] | None = None) -> dict[int, int]:
    """Read every result file back into a table ``{limit: count}``."""
    table = {}
    for f in inputs or []:
        with open(f.filepath) as stream:
            limit, count = stream.read().split()
        table[int(limit)] = int(count)
    return table


@join_app
def refine(table: dict[int, int]):
    """Look at the coarse sweep and launch one more task between each pair of limits.

    A join app runs the decision as a task of its own and returns futures; its
    own future completes with their results.
    """
    limits = sorted(table)
    midpoints = [(lo + hi) // 2 for lo, hi in itertools.pairwise(limits)]
    return [count_primes(m) for m in midpoints]


@python_app
def flaky(marker: str) -> str:
    """Fail the first time it runs (no marker file yet), succeed after that."""
    import os

    if not os.path.exists(marker):
        with open(marker, "w") as stream:
            stream.write("first try failed\n")
        raise RuntimeError("simulated transient failure on the first try")
    return "succeeded on retry"


@python_app(cache=True)
def slow_square(x: int, log: str) -> int:
    """Square ``x`` slowly; every real execution appends a line to ``log``."""
    import time

    with open(log, "a") as stream:
        stream.write(f"computed {x}\n")
    time.sleep(0.5)
    return x * x


def primes_below(limit: int) -> int:
    """The reference answer, by trial division, computed without flowlib."""
    return sum(1 for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1)))


def main() -> int:
    problems: list[str] = []

    def check(what: str, got: object, expected: object) -> None:
        mark = "ok" if got == expected else "WRONG"
        print(f"  [{mark}] {what}: {got!r}" + ("" if got == expected else f" (expected {expected!r})"))
        if got != expected:
            problems.append(what)

    with tempfile.TemporaryDirectory(prefix="flowlib-demo-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        config = Config(
            executors=[ThreadPoolExecutor(label="local", max_threads=2)],
            retries=2,
            run_dir=str(Path(tmp) / "runinfo"),
        )
        with flowlib.load(config) as dfk:
            print(f"flowlib demo: run directory {dfk.run_dir}\n")

            # 1. the sweep: one python task per limit, one bash task per result file
            counts = {limit: count_primes(limit) for limit in LIMITS}
            written = [
                write_result(limit, counts[limit], outputs=[File(str(work / f"primes_{limit}.txt"))])
                for limit in LIMITS
            ]
            # 2. read the files back: the DataFutures make collect wait for the bash tasks
            table_future = collect(inputs=[w.outputs[0] for w in written])
            # 3. a join app chooses more work from what the sweep found
            refined_future = refine(table_future)
            # 4. a task that fails once and is retried by the kernel
            flaky_future = flaky(str(work / "flaky.marker"))
            # 5. the same cached call twice: the second one is answered from the cache
            cache_log = str(work / "slow_square.log")
            start = time.monotonic()
            first = slow_square(12, cache_log).result()
            first_seconds = time.monotonic() - start
            start = time.monotonic()
            second = slow_square(12, cache_log).result()
            second_seconds = time.monotonic() - start

            table = table_future.result()
            refined = refined_future.result()
            flaky_result = flaky_future.result()
            flaky_failures = flaky_future.task_record.fail_count

        print("Primes below each limit (python_app -> bash_app file -> python_app via inputs=):")
        print("    limit   primes")
        for limit in sorted(table):
            print(f"    {limit:5d}   {table[limit]:6d}")
        print()
        midpoints = [(lo + hi) // 2 for lo, hi in itertools.pairwise(LIMITS)]
        print("Refinement launched by the join_app at the midpoints:")
        for m, c in zip(midpoints, refined, strict=False):
            print(f"    {m:5d}   {c:6d}")
        print()
        executions = Path(cache_log).read_text().splitlines()
        print(f"Retried task: {flaky_result} (failed {flaky_failures} time(s) before)")
        print(
            f"Cached call: slow_square(12) = {first} in {first_seconds:.2f} s, "
            f"again = {second} in {second_seconds:.2f} s "
            f"(function body ran {len(executions)} time(s))"
        )
        print("\nChecks:")
        check("sweep table", table, {limit: primes_below(limit) for limit in LIMITS})
        check("refinement", refined, [primes_below(m) for m in midpoints])
        check(
            "result files written",
            sorted(p.name for p in work.glob("primes_*.txt")),
            sorted(f"primes_{limit}.txt" for limit in LIMITS),
        )
        check("retried task result", flaky_result, "succeeded on retry")
        check("retried task failures", flaky_failures, 1)
        check("cached results", (first, second), (144, 144))
        check("cached function executions", len(executions), 1)

    if problems:
        print(f"\nFAILED: {', '.join(problems)}")
        return 1
    print("\nAll results are correct.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
