"""configure(): layered settings, clear errors, idempotence, clean shutdown."""

import urllib.error
import urllib.request

import pytest

import nexus_otel
from nexus_otel.telemetry import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for var in (
        "NEXUS_CONFIG",
        "NEXUS_PROMETHEUS_PORT",
        "NEXUS_SERVICE_NAME",
        "NEXUS_MAX_LABEL_VALUES",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_SERVICE_NAME",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    yield
    nexus_otel.shutdown()


def test_layers_defaults_then_file_then_env_then_arguments(tmp_path, monkeypatch):
    cfg = tmp_path / "nexus.yaml"
    cfg.write_text("telemetry:\n  service_name: from-file\n  max_label_values: 7\n  event_batch_size: 9\n")
    monkeypatch.setenv("NEXUS_MAX_LABEL_VALUES", "11")
    s = load_settings(event_batch_size=13)
    assert (s.service_name, s.max_label_values, s.event_batch_size) == ("from-file", 11, 13)
    assert s.event_flush_interval_s == 5.0  # default untouched


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("telemetry:\n  prometheus_prot: 9000\n", "unknown telemetry setting"),
        ("telemetry: [1, 2]\n", "must be a mapping"),
        ("telemetry:\n  otlp_endpoint: collector:4318\n", "http(s) URL"),
        ("telemetry:\n  event_batch_size: 0\n", "event_batch_size must be >= 1"),
        ("telemetry: {\n", "not valid YAML"),
    ],
)
def test_bad_config_file_names_the_problem(tmp_path, yaml_text, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(cfg)


def test_bad_env_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("NEXUS_PROMETHEUS_PORT", "ninety")
    with pytest.raises(ConfigError, match="NEXUS_PROMETHEUS_PORT"):
        load_settings()


def test_unknown_argument_is_refused():
    with pytest.raises(ConfigError, match="unknown setting 'prometheus_prot'"):
        load_settings(prometheus_prot=1)


def test_configure_is_idempotent_and_shutdown_stops_the_endpoint():
    first = nexus_otel.configure(prometheus_port=0, service_name="svc")
    assert nexus_otel.configure(prometheus_port=0, service_name="svc") is first
    assert nexus_otel.configure() is first
    with pytest.raises(ConfigError, match="already configured"):
        nexus_otel.configure(prometheus_port=0, service_name="other")
    body = urllib.request.urlopen(first.prometheus_url, timeout=5).read().decode()
    assert 'service_name="svc"' in body
    url = first.prometheus_url
    nexus_otel.shutdown()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)
    second = nexus_otel.configure(prometheus_port=0, service_name="other")
    assert second is not first


def test_standard_otel_variables_apply_when_nexus_settings_are_absent(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-otel-env")
    s = load_settings()
    assert (s.otlp_endpoint, s.service_name) == ("http://collector:4318", "from-otel-env")
    assert (
        load_settings(otlp_endpoint="http://other:4318", service_name="arg").otlp_endpoint
        == "http://other:4318"
    )
