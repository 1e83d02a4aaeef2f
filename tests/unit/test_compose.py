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


def test_kafka_keeps_its_log_in_its_volume():
    # the apache/kafka image logs to /tmp/kraft-combined-logs unless told: the volume stayed empty, and topics,
    # committed offsets and transaction state went with every re-created container
    kafka = compose()["services"]["kafka"]
    mounts = {v.split(":")[1] for v in kafka["volumes"]}
    assert kafka["environment"].get("KAFKA_LOG_DIRS") in mounts


def test_workers_get_a_model_and_a_data_dir_they_may_write():
    services = compose()["services"]
    # the image holds no model: a one-shot service trains one into the volume the workers read it from
    model_dir = "/var/lib/hotline/models"
    writers = [name for name, svc in services.items()
               if any(v.split(":")[1] == model_dir and not v.endswith(":ro") for v in svc.get("volumes", []))]
    assert writers and "train" in " ".join(str(x) for x in services[writers[0]].get("entrypoint", []))
    assert any(v.split(":")[1] == model_dir for v in services["router"]["volumes"])
    assert services["router"]["depends_on"][writers[0]]["condition"] == "service_completed_successfully"
    # the services run as `nobody`: the data directory (and the volumes initialised from it) must be theirs
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    user = text.split("\nUSER ", 1)[1].split()[0]
    assert f"chown -R {user}" in text and "/var/lib/hotline" in text.split(f"chown -R {user}", 1)[1].splitlines()[0]
