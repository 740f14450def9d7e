"""Monitoring: task state events, a durable store, a live dashboard, metrics.

``MonitoringHub`` (Parsl's name and keywords) goes in ``Config(monitoring=...)``.
This package imports none of its optional dependencies until a hub starts: the
store, dashboard and metrics need ``pip install 'flowlib[monitoring]'``; the
event API (:func:`subscribe`) and :class:`TaskEvent` need nothing extra.
"""

from __future__ import annotations

from flowlib.monitoring.events import EventBus, Subscription, TaskEvent
from flowlib.monitoring.hub import MonitoringHub, subscribe

__all__ = ["EventBus", "MonitoringHub", "Subscription", "TaskEvent", "subscribe"]
