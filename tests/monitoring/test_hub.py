"""MonitoringHub: Parsl's keywords, type checks naming the keyword, Config(monitoring=...)."""

from __future__ import annotations

import pytest

from flowlib.config import Config
from flowlib.errors import OptionalModuleMissing
from flowlib.monitoring import MonitoringHub
from flowlib.monitoring import hub as hub_module


def test_accepts_every_parsl_keyword():
    hub = MonitoringHub(
        hub_address="127.0.0.1",
        hub_port=55055,
        hub_port_range=(55050, 56000),
        workflow_name="sweep",
        workflow_version="1.2",
        logging_endpoint="sqlite:///x.db",
        monitoring_debug=True,
        resource_monitoring_enabled=False,
        resource_monitoring_interval=3,
        logdir="/tmp/logs",
        workflow_name_is_default=False,
        file_provider=None,
        udp_port=None,
    )
    assert hub.workflow_name == "sweep"
    assert hub.resource_monitoring_interval == 3
    assert hub.endpoint_for("/anything/000") == "sqlite:///x.db"
    assert Config(monitoring=hub).monitoring is hub


def test_default_store_is_next_to_the_run_directories(tmp_path):
    hub = MonitoringHub()
    assert hub.endpoint_for(str(tmp_path / "runinfo" / "003")) == f"sqlite:///{tmp_path}/runinfo/monitoring.db"


@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        ("hub_port", "55055", "int"),
        ("hub_port_range", [1, 2], "tuple"),
        ("workflow_name", 3, "str"),
        ("logging_endpoint", 5, "str"),
        ("monitoring_debug", "yes", "bool"),
        ("resource_monitoring_enabled", 1, "bool"),
        ("resource_monitoring_interval", "30", "float"),
        ("logdir", 7, "str"),
        ("flush_period", "1", "float"),
        ("close_timeout", None, "float"),
    ],
)
def test_wrong_type_names_the_keyword(keyword, value, expected):
    with pytest.raises(TypeError, match=f"MonitoringHub argument '{keyword}' must be .*{expected}"):
        MonitoringHub(**{keyword: value})


@pytest.mark.parametrize(
    ("kwargs", "keyword"),
    [
        ({"resource_monitoring_interval": 0}, "resource_monitoring_interval"),
        ({"flush_period": -1}, "flush_period"),
        ({"max_queued": 0}, "max_queued"),
        ({"close_timeout": 0}, "close_timeout"),
        ({"logging_endpoint": "monitoring.db"}, "logging_endpoint"),
    ],
)
def test_bad_values_name_the_keyword(kwargs, keyword):
    with pytest.raises(ValueError, match=keyword):
        MonitoringHub(**kwargs)


def test_config_refuses_something_else_as_monitoring():
    with pytest.raises(TypeError, match="Config argument 'monitoring' must be .*MonitoringHub"):
        Config(monitoring="sqlite:///x.db")  # type: ignore[arg-type]


def test_missing_extra_is_named(monkeypatch):
    monkeypatch.setattr(hub_module, "_EXTRA_MODULES", ("sqlalchemy", "flowlib_no_such_module"))
    with pytest.raises(OptionalModuleMissing, match=r"flowlib\[monitoring\]") as info:
        MonitoringHub()
    assert info.value.module_names == ["flowlib_no_such_module"]
