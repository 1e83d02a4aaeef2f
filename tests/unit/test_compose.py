"""No Docker engine runs here: check docker-compose.yml's shape and that its HOTLINE_* variables exist."""

from __future__ import annotations

from pathlib import Path

import yaml

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_services_images_and_healthchecks():
    services = compose()["services"]
    assert {"kafka", "postgres", "router", "web", "migrate"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["postgres"]["image"].startswith("postgres:")
    for name in ("kafka", "postgres", "router", "web"):
        assert "healthcheck" in services[name], name
        assert services[name]["healthcheck"]["test"], name
    # scalable with --scale: no container_name, no fixed host port
    assert "container_name" not in services["router"] and "ports" not in services["router"]
    assert services["router"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # the console is its own service (streams/console), not another worker
    assert services["web"]["command"] == ["web"] and services["router"]["command"] == ["worker"]
    assert "8080/healthz" in " ".join(services["web"]["healthcheck"]["test"])


def test_kafka_is_kraft_with_transactions_possible():
    env = compose()["services"]["kafka"]["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"]
    assert int(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) == 1
    assert int(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == 1


def test_every_hotline_variable_exists_in_settings():
    fields = {f"HOTLINE_{name.upper()}" for name in Settings.model_fields}
    used = set()
    for svc in compose()["services"].values():
        env = svc.get("environment") or {}
        used |= {k for k in env if k.startswith("HOTLINE_")}
    assert used, "the services must be configured through HOTLINE_* variables"
    assert used - fields == set()


def test_dockerfile_runs_the_console_script():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["hotline"]' in text and "pip install" in text


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        var = f"HOTLINE_{name.upper()}"
        short = var.rsplit("_", 1)[0]  # rows like HOTLINE_WORKER_WEB_HOST / _PORT
        assert var in readme or (f"{short}_" in readme and f"_{name.upper().rsplit('_', 1)[1]}" in readme), var
