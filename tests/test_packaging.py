"""The package as people install it: the wheel holds the templates and scripts, and the
extension works from a fresh virtual environment that has nothing of this checkout on its path.

Slower than the other unit tests (a wheel build, a virtual environment, its dependencies from
PyPI: about 15 s), but it needs no Docker engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deps_rocker.docker_in_docker import ENTRYPOINT, INIT

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = [
    "deps_rocker/templates/docker_in_docker_snippet.Dockerfile",
    "deps_rocker/files/docker_in_docker/install-docker",
    "deps_rocker/files/docker_in_docker/dind-daemon",
    "deps_rocker/files/docker_in_docker/entrypoint",
    "deps_rocker/files/docker_in_docker/sudoers",
]
# What a build leaves in a checkout, and what a build must not read from it.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache"
)
# Run by the fresh environment's Python. cliargs has neither base_image nor image, so the
# extension asks no Docker engine for the base image's configuration.
RENDER = """
import json
import deps_rocker
from deps_rocker.docker_in_docker import DockerInDocker

cliargs = {"docker_in_docker": True, "docker_in_docker_packages": "distro"}
extension = DockerInDocker()
print(json.dumps({
    "module": deps_rocker.__file__,
    "snippet": extension.get_snippet(cliargs),
    "files": sorted(extension.get_files(cliargs)),
}))
"""


def run(*command, cwd: Path) -> str:
    """Run a command with none of this checkout's Python path; fail with its output."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-4000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources: setuptools leaves a build/ folder behind,
    and a stale one in the checkout could put files in the wheel that the sources no longer
    have."""
    source = tmp_path_factory.mktemp("source") / "deps_rocker"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, source, cwd=out)
    (built,) = out.glob("deps_rocker-*.whl")
    return built


def test_wheel_holds_templates_and_scripts(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = [path for path in PACKAGE_DATA if path not in names]
    assert not missing, f"not in {wheel.name}: {missing}"


def test_installed_wheel_renders_the_snippet(wheel, tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", wheel, cwd=tmp_path)

    # -I: isolated mode, so neither the working directory nor PYTHONPATH can supply the package.
    rendered = json.loads(run(python, "-I", "-c", RENDER, cwd=tmp_path))

    assert Path(rendered["module"]).resolve().is_relative_to(venv.resolve())
    entrypoints = [
        line for line in rendered["snippet"].splitlines() if line.startswith("ENTRYPOINT ")
    ]
    assert len(entrypoints) == 1, rendered["snippet"]
    assert json.loads(entrypoints[0][len("ENTRYPOINT ") :]) == [INIT, "-g", "--", ENTRYPOINT]
    # The package's scripts, and rocker's settings for the inner daemon, which are generated.
    assert rendered["files"] == sorted(
        [
            *(path.replace("deps_rocker/files/", "") for path in PACKAGE_DATA[1:]),
            "docker_in_docker/daemon.json",
        ]
    )
