"""Non-root users and companion extensions: the inner daemon serves whoever the container runs
as, and what would break isolation is refused before anything is built."""

from __future__ import annotations

import re

import pytest
from conftest import BASE_IMAGE, IMAGE_NAME, PACKAGES_MODE, dind_args, run_rocker

pytestmark = pytest.mark.integration


def values(output: str) -> dict:
    return dict(re.findall(r"^([a-z-]+)=(.*)$", output, re.M))


def test_rocker_user_as_non_root_host_user(tester, workdir):
    workdir.chmod(0o777)  # the user inside writes a file here
    # rocker --user creates the host user in the image: a separate image name keeps the cache
    # of the root runs apart.
    result = tester(
        "--docker-in-docker",
        "--docker-in-docker-packages",
        PACKAGES_MODE,
        "--image-name",
        IMAGE_NAME.replace("deps-rocker-test:", "deps-rocker-test-user:"),
        "--user",
        "--volume",
        f"{workdir}:/work",
        "--",
        BASE_IMAGE,
        "/work/user-workload.sh",
    )
    assert result.returncode == 0, result.stdout[-4000:]
    seen = values(result.stdout)
    assert seen["whoami"].startswith(f"{tester.account.pw_name} uid={tester.account.pw_uid}")
    assert "docker" in seen["groups"].split()
    assert seen["docker-ps"] == seen["docker-build"] == seen["compose"] == "ok"
    assert (workdir / "created-inside").stat().st_uid == tester.account.pw_uid


@pytest.fixture
def base_with_user(engine, tmp_path, unique):
    tag = f"deps-rocker-test-baseuser:{unique}"
    (tmp_path / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nRUN useradd --create-home builder\nUSER builder\n"
    )
    engine.images.build(path=str(tmp_path), tag=tag, rm=True)
    yield tag
    engine.images.remove(tag, force=True)


def test_base_image_user_without_rocker_user(base_with_user, workdir):
    workdir.chmod(0o777)
    result = run_rocker(
        *dind_args("--volume", f"{workdir}:/work", "--"), base_with_user, "/work/user-workload.sh"
    )
    assert result.returncode == 0, result.stdout[-4000:]
    seen = values(result.stdout)
    assert seen["whoami"].startswith("builder ")
    assert seen["docker-ps"] == seen["docker-build"] == seen["compose"] == "ok"
    # Only the narrow rule for the daemon's start and stop: no blanket sudo was needed.
    assert seen["blanket-sudo"] == "no"


@pytest.mark.parametrize(
    "args, says",
    [
        (["--network", "host"], "--network host"),
        (["--volume", "/var/run/docker.sock:/var/run/docker.sock", "--"], "Docker-out-of-Docker"),
        (["--docker-in-docker-packages", "snap"], "invalid choice: 'snap'"),
        (["--docker-in-docker-timeout", "0"], "'0'"),
    ],
)
def test_refused_before_anything_is_built(engine, args, says):
    result = run_rocker("--docker-in-docker", *args, BASE_IMAGE, "true")
    assert result.returncode == 2, result.stdout[-3000:]
    assert says in result.stdout
    assert "Writing dockerfile" not in result.stdout
