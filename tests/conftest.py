"""Fixtures shared by the tests.

The integration tests drive the real ``rocker`` CLI against a real Docker engine. Where no
engine answers they are skipped with the reason, except under CI (``CI`` set), where a missing
engine is a failure: a skipped integration test would hide exactly what it exists to catch.
``scripts/provision-test-host.sh`` makes a machine ready for them.

Environment:
  DEPS_ROCKER_TEST_IMAGE     base image for rocker (default: debian:13)
  DEPS_ROCKER_TEST_PACKAGES  packages mode to test (default: distro, which needs only a
                             Debian mirror; set docker-ce where Docker's repository answers)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

BASE_IMAGE = os.environ.get("DEPS_ROCKER_TEST_IMAGE", "debian:13")
PACKAGES_MODE = os.environ.get("DEPS_ROCKER_TEST_PACKAGES", "distro")
# A fixed tag keeps the built image between runs, so that Docker's cache makes reruns fast.
IMAGE_NAME = f"deps-rocker-test:{PACKAGES_MODE}-{re.sub(r'[^a-z0-9.]+', '-', BASE_IMAGE.lower())}"
DATA = Path(__file__).parent / "data"


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def missing(reason: str):
    """Something an integration test needs is not on this machine: skip, saying what, except
    under CI, where a skip would hide the very failure the test exists to catch."""
    if _under_ci():
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine():
    """A docker SDK client of the host's engine, with the base image present."""
    docker = pytest.importorskip("docker", reason="the docker SDK is in the 'test' extra")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        missing(f"no Docker engine answers ({error}); run scripts/provision-test-host.sh")
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"base image {BASE_IMAGE} is missing; run scripts/provision-test-host.sh")
    return client


@pytest.fixture(scope="session")
def static_busybox() -> Path:
    """A statically linked busybox, to build inner images FROM scratch without a registry."""
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.is_file() and b"/ld-linux" not in path.read_bytes()[:4096]:
            ldd = subprocess.run(["ldd", candidate], capture_output=True, text=True)
            if "not a dynamic executable" in ldd.stdout + ldd.stderr:
                return path
    pytest.fail("no static busybox on the host; install busybox-static")


@pytest.fixture
def workdir(tmp_path, static_busybox) -> Path:
    """A folder mounted into the container at /work: the inner build context and scripts."""
    shutil.copy(static_busybox, tmp_path / "busybox")
    for item in DATA.iterdir():
        shutil.copy(item, tmp_path / item.name)
    for script in tmp_path.glob("*.sh"):
        script.chmod(0o755)
    tmp_path.chmod(0o755)
    return tmp_path


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:12]


def rocker_executable() -> str:
    beside = Path(sys.executable).with_name("rocker")
    return str(beside) if beside.exists() else "rocker"


def run_rocker(*args: str, env=None, timeout: int = 1200) -> subprocess.CompletedProcess:
    """Run the real rocker CLI, non-interactively; stdout and stderr together in .stdout.
    env: variables to add to this process's environment for the run."""
    command = [rocker_executable(), "--mode", "non-interactive", *args]
    return subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def dind_args(*extra: str) -> list:
    """--docker-in-docker in the packages mode under test, keeping the built image."""
    return [
        "--docker-in-docker",
        "--docker-in-docker-packages",
        PACKAGES_MODE,
        "--image-name",
        IMAGE_NAME,
        *extra,
    ]


TEST_USER = os.environ.get("DEPS_ROCKER_TEST_USER", "deps-rocker-tester")
TESTER_VENV = Path("/var/tmp/deps-rocker-tester-venv")


@pytest.fixture(scope="session")
def tester(engine):
    """Runs rocker as a non-root host user of the docker group, from a virtual environment of
    its own (the test runner's Python may live where that user cannot read, such as /root)."""
    import pwd

    if os.geteuid() != 0:
        missing("running rocker as another host user needs root (runuser)")
    try:
        account = pwd.getpwnam(TEST_USER)
    except KeyError:
        missing(f"host user {TEST_USER} is missing; run scripts/provision-test-host.sh")

    if not (TESTER_VENV / "bin" / "rocker").exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(TESTER_VENV)], check=True)
    project = Path(__file__).resolve().parent.parent
    subprocess.run(
        [
            str(TESTER_VENV / "bin" / "pip"),
            "install",
            "-q",
            "--force-reinstall",
            "--no-deps",
            str(project),
        ],
        check=True,
    )
    subprocess.run([str(TESTER_VENV / "bin" / "pip"), "install", "-q", str(project)], check=True)

    def run(*args: str, env=(), timeout: int = 1200) -> subprocess.CompletedProcess:
        command = [
            "runuser",
            "-u",
            TEST_USER,
            "--",
            "env",
            f"HOME={account.pw_dir}",
            f"USER={TEST_USER}",
            *env,
            str(TESTER_VENV / "bin" / "rocker"),
            "--mode",
            "non-interactive",
            *args,
        ]
        return subprocess.run(
            command,
            cwd="/tmp",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )

    run.account = account
    return run
