"""The compose stack and Collector tiers of `deploy/`: parsed, and their ports and names agree.

None of these can run here (no container engine, no Collector, Jaeger or Grafana binary),
so the checks are the ones a failed `docker compose up` would otherwise reveal: every
reference resolves, every port one side dials is one the other side listens on, and the
sampling policy is crm-otel's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from crm_otel._settings import Settings
from crm_otel.metrics._settings import MetricsSettings
from semconv import metrics
from tests.deploy import _names

DEPLOY = _names.DEPLOY
OTLP_GRPC, OTLP_HTTP = 4317, 4318
JAEGER_UI = 16686
SDK_DEFAULT_OTLP_ENDPOINT = "http://localhost:4318"
"""The CRM's default OTLP endpoint (docs/design.md, Zero-code launch): the gateway listens here."""


def _load(relative: str) -> Any:
    return yaml.safe_load((DEPLOY / relative).read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """deploy/compose.yaml, parsed."""
    return dict(_load("compose.yaml"))


@pytest.fixture(scope="module")
def gateway() -> dict[str, Any]:
    """The gateway tier's Collector configuration."""
    return dict(_load("collector/gateway.yaml"))


@pytest.fixture(scope="module")
def sampler() -> dict[str, Any]:
    """The sampling tier's Collector configuration."""
    return dict(_load("collector/sampler.yaml"))


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _published(service: dict[str, Any]) -> set[int]:
    """Container ports a compose service publishes on the host."""
    return {int(str(p).split(":")[-1]) for p in service.get("ports", [])}


def _reachable(service: dict[str, Any]) -> set[int]:
    """Container ports other services of the compose network may dial (exposed or published)."""
    return _published(service) | {int(p) for p in service.get("expose", [])}


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (named volumes skipped)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            mounts[target] = (DEPLOY / source).resolve()
    return mounts


def _host_path(service: dict[str, Any], container_path: str) -> Path:
    """The host file behind a container path, through the service's bind mounts."""
    for target, source in sorted(_mounts(service).items(), key=lambda m: -len(m[0])):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"{container_path} is not mounted")


def _component_names(config: dict[str, Any], kind: str) -> set[str]:
    return set((config.get(kind) or {}).keys())


@pytest.mark.parametrize("tier", ["gateway", "sampler"])
def test_collector_pipelines_reference_defined_components(
    tier: str, request: pytest.FixtureRequest
) -> None:
    """Pipelines use only defined components, use all of them, and connectors link pipelines."""
    config = request.getfixturevalue(tier)
    connectors = _component_names(config, "connectors")
    used: set[str] = set()
    as_exporter: set[str] = set()
    as_receiver: set[str] = set()
    for name, pipeline in config["service"]["pipelines"].items():
        assert name.split("/")[0] in {"traces", "metrics", "logs"}, name
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                defined = _component_names(config, kind) | (
                    connectors if kind != "processors" else set()
                )
                assert component in defined, (
                    f"{tier}: {name} uses undefined {kind[:-1]} {component}"
                )
                used.add(component)
        as_exporter |= set(pipeline.get("exporters", [])) & connectors
        as_receiver |= set(pipeline.get("receivers", [])) & connectors
    for kind in ("receivers", "processors", "exporters", "connectors"):
        assert _component_names(config, kind) <= used, f"{tier}: unused {kind}"
    assert as_exporter == as_receiver == connectors
    assert set(config["service"].get("extensions", [])) == _component_names(config, "extensions")


def test_gateway_receives_otlp_on_the_standard_ports(
    gateway: dict[str, Any], compose: dict[str, Any]
) -> None:
    """The gateway listens on OTLP 4317/4318, published by compose: the CRM's default endpoint."""
    protocols = gateway["receivers"]["otlp"]["protocols"]
    assert _port(protocols["grpc"]["endpoint"]) == OTLP_GRPC
    assert _port(protocols["http"]["endpoint"]) == OTLP_HTTP
    assert {OTLP_GRPC, OTLP_HTTP} <= _published(compose["services"]["collector-gateway"])
    assert urlsplit(SDK_DEFAULT_OTLP_ENDPOINT).port in _published(
        compose["services"]["collector-gateway"]
    )


def test_gateway_routes_traces_by_trace_id_to_the_sampling_tier(
    gateway: dict[str, Any], sampler: dict[str, Any], compose: dict[str, Any]
) -> None:
    """Spans are load-balanced by trace id to the sampler service, on the port it listens on."""
    balancer = gateway["exporters"]["loadbalancing"]
    assert balancer["routing_key"] == "traceID"
    dns = balancer["resolver"]["dns"]
    assert dns["hostname"] in compose["services"]
    sampler_port = _port(sampler["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"])
    assert dns["port"] == sampler_port
    assert sampler_port in _reachable(compose["services"][dns["hostname"]])
    assert "loadbalancing" in gateway["service"]["pipelines"]["traces"]["exporters"]
    assert "tail_sampling" not in gateway.get("processors", {})


def test_sampler_exports_to_jaeger_over_otlp(
    sampler: dict[str, Any], compose: dict[str, Any]
) -> None:
    """The sampled traces go to jaeger:4317 over OTLP, which the Jaeger service accepts."""
    jaeger_exporters = [name for name in sampler["exporters"] if name.split("/")[0] == "otlp"]
    assert jaeger_exporters == ["otlp/jaeger"]
    endpoint = sampler["exporters"]["otlp/jaeger"]["endpoint"]
    assert endpoint == "jaeger:4317"
    jaeger = compose["services"]["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/")
    assert str(jaeger["environment"]["COLLECTOR_OTLP_ENABLED"]) == "true"
    assert {OTLP_GRPC, OTLP_HTTP} <= _reachable(jaeger)
    assert JAEGER_UI in _published(jaeger)
    (sampled,) = [
        p for p in sampler["service"]["pipelines"].values() if "otlp/jaeger" in p["exporters"]
    ]
    assert "tail_sampling" in sampled["processors"]


def test_sampling_policy_matches_crm_otel_defaults(sampler: dict[str, Any]) -> None:
    """Errors kept, slow at 2000 ms, baseline 10 %: crm-otel's own defaults, across services."""
    policies = {p["name"]: p for p in sampler["processors"]["tail_sampling"]["policies"]}
    by_type: dict[str, list[dict[str, Any]]] = {}
    for policy in policies.values():
        by_type.setdefault(policy["type"], []).append(policy)
    # What a production CRM process runs with when no variable is set.
    defaults = Settings.from_env({}).sampling
    slow_default, ratio_default = defaults.slow_threshold_ms, defaults.ratio
    assert (slow_default, ratio_default) == (2000, 0.1)  # docs/design.md, Sampling
    (latency,) = by_type["latency"]
    assert latency["latency"]["threshold_ms"] == slow_default
    (baseline,) = by_type["probabilistic"]
    assert baseline["probabilistic"]["sampling_percentage"] == pytest.approx(ratio_default * 100)
    assert defaults.keep_errors
    (errors,) = by_type["status_code"]
    assert errors["status_code"]["status_codes"] == ["ERROR"]
    server_errors = {
        p["numeric_attribute"]["key"]: p["numeric_attribute"] for p in by_type["numeric_attribute"]
    }
    for key in ("http.response.status_code", "http.status_code"):
        assert (server_errors[key]["min_value"], server_errors[key]["max_value"]) == (500, 599)
    assert set(by_type) == {"status_code", "numeric_attribute", "latency", "probabilistic"}


def test_metrics_are_remote_written_to_prometheus(
    gateway: dict[str, Any], sampler: dict[str, Any], compose: dict[str, Any]
) -> None:
    """Both tiers remote-write to the Prometheus service, whose receiver is enabled."""
    prometheus = compose["services"]["prometheus"]
    assert "--web.enable-remote-write-receiver" in prometheus["command"]
    for config in (gateway, sampler):
        endpoint = urlsplit(config["exporters"]["prometheusremotewrite"]["endpoint"])
        assert endpoint.hostname == "prometheus" and endpoint.path == "/api/v1/write"
        assert endpoint.port in _reachable(prometheus)
        assert any(
            "prometheusremotewrite" in p["exporters"] and name.startswith("metrics")
            for name, p in config["service"]["pipelines"].items()
        )


def test_pushed_metrics_get_the_scraped_names(gateway: dict[str, Any]) -> None:
    """Pushed OTLP metrics get the families of docs/design.md: every catalogue entry, no suffix."""
    transforms = gateway["processors"]["metricstransform/prometheus-names"]["transforms"]
    renames = {t["include"]: t["new_name"] for t in transforms if t["action"] == "update"}
    assert all(t["match_type"] == "strict" for t in transforms)
    assert renames == {d.name: d.prometheus_name for d in metrics.CATALOGUE}
    assert gateway["exporters"]["prometheusremotewrite"]["add_metric_suffixes"] is False
    pipeline = gateway["service"]["pipelines"]["metrics"]
    assert "metricstransform/prometheus-names" in pipeline["processors"]
    assert pipeline["exporters"] == ["prometheusremotewrite"]


def test_prometheus_gets_the_config_and_rules_it_names(compose: dict[str, Any]) -> None:
    """The mounted prometheus.yml exists, so do its rule files, and it scrapes job crm-backend."""
    prometheus = compose["services"]["prometheus"]
    (flag,) = [c for c in prometheus["command"] if c.startswith("--config.file=")]
    config_path = _host_path(prometheus, flag.split("=", 1)[1])
    assert config_path == DEPLOY / "prometheus" / "prometheus.yml"
    config = yaml.safe_load(config_path.read_text())
    for rule_file in config["rule_files"]:
        assert (config_path.parent / rule_file).is_file(), rule_file
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    crm = jobs["crm-backend"]
    metrics = MetricsSettings.from_env({})
    assert crm["metrics_path"] == metrics.path
    ports = {_port(t) for sc in crm["static_configs"] for t in sc["targets"]}
    assert metrics.port in ports
    assert "host.docker.internal:host-gateway" in prometheus["extra_hosts"]


def test_prometheus_scrapes_the_collectors_telemetry(
    gateway: dict[str, Any], sampler: dict[str, Any]
) -> None:
    """The otel-collector job scrapes both tiers on the port their own telemetry is served on."""
    config = _load("prometheus/prometheus.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "otel-collector"]
    targets = {t for sc in job.get("static_configs", []) for t in sc["targets"]}
    targets |= {f"{n}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for n in sd["names"]}
    for service, config_ in (("collector-gateway", gateway), ("collector-sampler", sampler)):
        (reader,) = config_["service"]["telemetry"]["metrics"]["readers"]
        port = reader["pull"]["exporter"]["prometheus"]["port"]
        assert f"{service}:{port}" in targets


def test_grafana_mounts_provisioning_and_dashboards(compose: dict[str, Any]) -> None:
    """Grafana mounts provisioning and the dashboards at the provider's path; reaches Prometheus."""
    grafana = compose["services"]["grafana"]
    provisioning = _host_path(grafana, "/etc/grafana/provisioning")
    assert provisioning == DEPLOY / "grafana" / "provisioning"
    (provider,) = yaml.safe_load(next((provisioning / "dashboards").glob("*.yml")).read_text())[
        "providers"
    ]
    dashboards = _host_path(grafana, provider["options"]["path"])
    assert dashboards == _names.DASHBOARDS_DIR
    assert {p.stem for p in dashboards.glob("*.json")} == {
        "request",
        "workflow",
        "system-health",
        "tenants",
    }
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _host_path(grafana, home).is_file()
    (datasource,) = yaml.safe_load(next((provisioning / "datasources").glob("*.yml")).read_text())[
        "datasources"
    ]
    url = urlsplit(datasource["url"])
    assert url.hostname == "prometheus" and url.port in _reachable(
        compose["services"]["prometheus"]
    )


def test_every_bind_mount_exists(compose: dict[str, Any]) -> None:
    """Each `./...` volume of compose.yaml names a file or folder of deploy/."""
    for name, service in compose["services"].items():
        for target, source in _mounts(service).items():
            assert source.exists(), f"{name}: {source} (for {target}) does not exist"
            assert DEPLOY in source.parents or source == DEPLOY


def test_collectors_load_their_config_files(compose: dict[str, Any]) -> None:
    """Each Collector service mounts its tier's file where its `--config` flag points."""
    for service, file in (
        ("collector-gateway", "gateway.yaml"),
        ("collector-sampler", "sampler.yaml"),
    ):
        spec = compose["services"][service]
        assert spec["image"].startswith("otel/opentelemetry-collector-contrib:")
        (flag,) = [c for c in spec["command"] if c.startswith("--config=")]
        assert _host_path(spec, flag.split("=", 1)[1]) == DEPLOY / "collector" / file
