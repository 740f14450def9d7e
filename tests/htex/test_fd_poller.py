"""FdPoller: the zmq.Poller look-alike on select.poll used where only descriptors are watched."""

from __future__ import annotations

import os
import socket

import pytest
import zmq

from flowlib.executors.high_throughput.fd_poller import POLLERR, POLLIN, POLLOUT, FdPoller


def test_its_event_bits_are_zeromqs() -> None:
    assert (POLLIN, POLLOUT, POLLERR) == (int(zmq.POLLIN), int(zmq.POLLOUT), int(zmq.POLLERR))


def test_a_quiet_pipe_times_out_and_a_written_one_is_readable() -> None:
    r, w = os.pipe()
    try:
        poller = FdPoller()
        poller.register(r, POLLIN)
        assert poller.poll(0) == []
        assert poller.poll(20) == []
        os.write(w, b"x")
        assert poller.poll(1000) == [(r, POLLIN)]
    finally:
        os.close(r)
        os.close(w)


def test_modify_adds_writability_and_unregister_stops_watching() -> None:
    a, b = socket.socketpair()
    try:
        poller = FdPoller()
        poller.register(a.fileno(), zmq.POLLIN)  # pyzmq's flag objects are accepted too
        assert poller.poll(0) == []
        poller.modify(a.fileno(), POLLIN | POLLOUT)
        assert poller.poll(0) == [(a.fileno(), POLLOUT)]
        b.send(b"x")
        assert poller.poll(0) == [(a.fileno(), POLLIN | POLLOUT)]
        poller.unregister(a.fileno())
        assert poller.poll(0) == []
        with pytest.raises(KeyError):
            poller.unregister(a.fileno())
    finally:
        a.close()
        b.close()


def test_a_hang_up_is_reported_as_pollerr_as_zmq_poller_does() -> None:
    r, w = os.pipe()
    try:
        ours, theirs = FdPoller(), zmq.Poller()
        ours.register(r, POLLIN)
        theirs.register(r, zmq.POLLIN)
        os.close(w)
        w = -1
        assert ours.poll(1000) == [(r, POLLERR)]
        assert [(fd, int(ev)) for fd, ev in theirs.poll(1000)] == [(r, POLLERR)]
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
