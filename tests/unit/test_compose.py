"""docker-compose.yml is valid (checked by docker-compose itself) and has the stack's services."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = shutil.which("docker-compose")
SECRETS = (
    "DIALER_AMI_SECRET",
    "DIALER_API_TOKENS",
    "DIALER_REDIS_PASSWORD",
    "DIALER_REDIS_ADMIN_PASSWORD",
)
FREESWITCH_VARS = ("DIALER_PBX", "DIALER_ESL_PASSWORD", "DIALER_FREESWITCH_IMAGE")

pytestmark = pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose not installed (apt-get install docker-compose)"
)


def compose(
    *args: str, secret: str | None = "test-secret", extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS + FREESWITCH_VARS}
    env.update(extra or {})
    env["DIALER_API_TOKENS"] = "admin:" + "a" * 32
    env["DIALER_REDIS_PASSWORD"] = "d" * 32
    env["DIALER_REDIS_ADMIN_PASSWORD"] = "e" * 32
    if secret is not None:
        env["DIALER_AMI_SECRET"] = secret
    return subprocess.run(
        [str(COMPOSE), "-f", "docker-compose.yml", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def service_blocks(config: str) -> dict[str, str]:
    """The normalised ``docker-compose config`` output, cut into one text block per service."""
    services = config.split("services:\n", 1)[1]
    services = re.split(r"\n(?=\S)", services, maxsplit=1)[0]  # up to the next top-level key
    parts = re.split(r"(?m)^  (\S[^:]*):\n", services)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_compose_file_is_valid() -> None:
    done = compose("config", "-q")
    assert done.returncode == 0, done.stderr


def test_compose_refuses_to_run_without_an_ami_secret() -> None:
    done = compose("config", "-q", secret=None)
    assert done.returncode != 0
    assert "DIALER_AMI_SECRET" in done.stderr


def test_services_profiles_and_mounts() -> None:
    services = compose("config", "--services")
    assert services.returncode == 0, services.stderr
    assert set(services.stdout.split()) == {
        "redis", "asterisk", "sipp", "dialer", "prometheus", "grafana", "freeswitch"
    }  # fmt: skip
    assert sorted(compose("config", "--profiles").stdout.split()) == ["freeswitch", "loadtest"]

    config = compose("config")
    assert config.returncode == 0, config.stderr
    blocks = service_blocks(config.stdout)
    assert set(blocks) == {
        "redis", "asterisk", "sipp", "dialer", "prometheus", "grafana", "freeswitch"
    }  # fmt: skip
    assert '- --appendonly\n    - "yes"\n' in blocks["redis"], blocks["redis"]
    assert f"- {ROOT}/ops/redis:/ops-redis:ro\n" in blocks["redis"], blocks["redis"]
    assert "/ops-redis/entrypoint.sh" in blocks["redis"]
    mount = f"- {ROOT}/pbx-config/asterisk:"
    assert f"{mount}/pbx-config:ro\n" in blocks["asterisk"], blocks["asterisk"]
    assert f"{mount}/src/pbx-config/asterisk:ro\n" in blocks["sipp"], blocks["sipp"]
    for name in ("asterisk", "sipp"):
        assert "network_mode: host\n" in blocks[name]
        assert "dockerfile: ops/asterisk/Dockerfile\n" in blocks[name]
    assert "profiles:\n    - loadtest\n" in blocks["sipp"]
    assert (ROOT / "ops" / "asterisk" / "Dockerfile").is_file()


def test_dialer_prometheus_and_grafana_use_the_repository_configs() -> None:
    config = compose("config")
    assert config.returncode == 0, config.stderr
    blocks = service_blocks(config.stdout)
    assert "dockerfile: ops/dialer/Dockerfile\n" in blocks["dialer"]
    assert (ROOT / "ops" / "dialer" / "Dockerfile").is_file()
    assert "DIALER_AMI_URL: ami://dialer:test-secret@127.0.0.1:5038" in blocks["dialer"]
    assert f"DIALER_REDIS_URL: redis://dialer:{'d' * 32}@127.0.0.1:6379/0" in blocks["dialer"]
    assert (
        "DIALER_METRICS_PORT: '9108'" in blocks["dialer"]
        or 'DIALER_METRICS_PORT: "9108"' in (blocks["dialer"])
    )
    # /metrics has no token: loopback, which the host-network Prometheus reaches (dialer:127.0.0.1)
    assert "DIALER_METRICS_HOST: 127.0.0.1\n" in blocks["dialer"]
    assert "network_mode: host\n" in blocks["dialer"]
    assert "network_mode: host\n" in blocks["prometheus"]
    assert f"- {ROOT}/ops/prometheus:/etc/prometheus:ro\n" in blocks["prometheus"]
    assert f"- {ROOT}/ops/grafana/provisioning:/etc/grafana/provisioning:ro\n" in blocks["grafana"]
    dashboards = f"- {ROOT}/ops/grafana/dashboards:/var/lib/grafana/dashboards/dialer:ro\n"
    assert dashboards in blocks["grafana"]
    provider = (ROOT / "ops/grafana/provisioning/dashboards/dialer.yml").read_text()
    assert "path: /var/lib/grafana/dashboards/dialer" in provider
    # the scrape targets' names resolve to the host network the services share
    assert "dialer:127.0.0.1" in blocks["prometheus"]
    assert "prometheus:127.0.0.1" in blocks["grafana"]


def test_compose_refuses_to_run_the_api_without_tokens() -> None:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env.update(DIALER_AMI_SECRET="x", DIALER_REDIS_PASSWORD="d", DIALER_REDIS_ADMIN_PASSWORD="e")
    done = subprocess.run(
        [str(COMPOSE), "-f", "docker-compose.yml", "config", "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "DIALER_API_TOKENS" in done.stderr


@pytest.mark.parametrize("missing", ["DIALER_REDIS_PASSWORD", "DIALER_REDIS_ADMIN_PASSWORD"])
def test_compose_refuses_to_run_redis_without_its_passwords(missing: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env.update(
        DIALER_AMI_SECRET="x",
        DIALER_API_TOKENS="admin:" + "a" * 32,
        DIALER_REDIS_PASSWORD="d" * 32,
        DIALER_REDIS_ADMIN_PASSWORD="e" * 32,
    )
    del env[missing]
    done = subprocess.run(
        [str(COMPOSE), "-f", "docker-compose.yml", "config", "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert missing in done.stderr


def test_freeswitch_runs_under_its_profile_with_pbx_config_mounted() -> None:
    config = compose("--profile", "freeswitch", "config")
    assert config.returncode == 0, config.stderr
    block = service_blocks(config.stdout)["freeswitch"]
    assert "profiles:\n    - freeswitch\n" in block
    assert "network_mode: host\n" in block
    assert "dockerfile: ops/freeswitch/Dockerfile\n" in block
    assert (ROOT / "ops" / "freeswitch" / "Dockerfile").is_file()
    assert f"- {ROOT}/pbx-config/freeswitch:/src/pbx-config/freeswitch:ro\n" in block
    # the gateways are named after the trunks the dialer dials (sofia/gateway/<trunk>/...)
    assert "- --gateway=carrier=5070\n" in block
    assert "- --esl-port=8021\n" in block
    assert "image: dialer/freeswitch:local\n" in block


def test_the_engine_is_switched_to_esl_by_dialer_pbx(tmp_path: Path) -> None:
    """The dialer service's entrypoint keeps the URL of the switch DIALER_PBX names (an engine
    takes one): run as docker would, with a stand-in ``dialer`` that prints its environment."""
    env = {"DIALER_PBX": "freeswitch", "DIALER_ESL_PASSWORD": "f" * 32}
    config = compose("--profile", "freeswitch", "config", extra=env)
    assert config.returncode == 0, config.stderr
    service = yaml.safe_load(config.stdout)["services"]["dialer"]
    urls = service["environment"]
    assert urls["DIALER_ESL_URL"] == f"esl://:{'f' * 32}@127.0.0.1:8021"
    assert urls["DIALER_PBX"] == "freeswitch"
    default = yaml.safe_load(compose("config").stdout)["services"]["dialer"]["environment"]
    assert default["DIALER_PBX"] == "asterisk"

    stand_in = tmp_path / "dialer"
    stand_in.write_text(
        '#!/bin/sh\necho "args: $*"; env | grep -E "^DIALER_(AMI|ESL)_URL=" | sort\n'
    )
    stand_in.chmod(0o755)
    argv = [a.replace("$$", "$") for a in service["entrypoint"]] + service["command"]
    for pbx, kept in (("asterisk", "DIALER_AMI_URL"), ("freeswitch", "DIALER_ESL_URL")):
        run_env = {**urls, "DIALER_PBX": pbx, "PATH": f"{tmp_path}:/usr/bin:/bin"}
        done = subprocess.run(argv, env=run_env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == "args: run"
        assert [line.split("=", 1)[0] for line in lines[1:]] == [kept]
    bad = subprocess.run(
        argv, env={**urls, "DIALER_PBX": "yate"}, capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2
    assert "DIALER_PBX must be asterisk or freeswitch" in bad.stderr
