"""Submitter memory for one large argument on htex: the peak RSS over the payload's size.

Each case runs in a fresh process: a HighThroughputExecutor with one worker on
127.0.0.1, a warm-up task, then one task whose argument is ``--size`` MiB of
random bytes; the task returns the argument's length. The peak is the
process's resident high-water mark (``VmHWM``, which counts ZeroMQ's and
CurveZMQ's buffers that ``tracemalloc`` cannot see), reset after the argument
is built (``/proc/self/clear_refs``), so the figures are:

* ``peak/payload``: (high-water mark while the task ran - RSS before the
  argument existed) / payload size; 1.0 is the argument itself, so the
  executor added nothing;
* ``extra/payload``: the same above the RSS once the argument was built (what
  the executor added).

    python benchmarks/payload_memory.py                      # 200 MiB; TCP encrypted, TCP plain, Unix sockets
    python benchmarks/payload_memory.py --size 64 --cases tcp-curve
    python benchmarks/payload_memory.py --direction result   # a large result instead of a large argument
"""

from __future__ import annotations

import argparse
import json
import os

from fresh_process import high_water_bytes, local_htex_config, reset_high_water, rss_bytes, run_fresh

CASES = {
    "tcp-curve": {"unix_sockets": False, "encrypted": True},
    "tcp-plain": {"unix_sockets": False, "encrypted": False},
    "unix": {"unix_sockets": True, "encrypted": True},
}


def length(data):
    return len(data)


def make(size):
    return os.urandom(size)


def run_case(case: str, size: int, direction: str) -> dict[str, float]:
    import flowlib
    from flowlib import python_app

    config = local_htex_config(1, "flowlib-payload-memory-", **CASES[case])
    with flowlib.load(config):
        measure, build = python_app(length), python_app(make)
        assert measure(b"warm-up").result(timeout=120) == 7
        assert len(build(1000).result(timeout=60)) == 1000
        before = rss_bytes()
        if direction == "argument":
            data = os.urandom(size)
            built = rss_bytes()
            reset_high_water()
            assert measure(data).result(timeout=300) == size
            peak = high_water_bytes()
        else:
            built = before
            reset_high_water()
            data = build(size).result(timeout=300)
            peak = high_water_bytes()
            assert len(data) == size
    return {
        "size": size,
        "peak_over_payload": (peak - before) / size,
        "extra_over_payload": (peak - built) / size,
        "peak_mib": peak / (1 << 20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200, help="payload in MiB (default 200)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--direction", choices=("argument", "result"), default="argument")
    parser.add_argument("--rounds", type=int, default=1, help="fresh processes per case (default 1)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.size << 20
    if args.case:
        print(json.dumps(run_case(args.case, size, args.direction)))
        return
    print(f"{args.direction} of {args.size} MiB")
    print(f"{'case':>10} {'peak/payload':>13} {'extra/payload':>14} {'peak RSS MiB':>13}")
    for _ in range(args.rounds):
        for case in args.cases.split(","):
            r = run_fresh(__file__, "--case", case, "--size", str(args.size), "--direction", args.direction)
            print(
                f"{case:>10} {r['peak_over_payload']:>13.2f} {r['extra_over_payload']:>14.2f} {r['peak_mib']:>13.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
