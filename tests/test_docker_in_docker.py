"""Docker-in-Docker end to end: the real rocker CLI, a real engine, real nested containers.

One rocker run of ``data/nested-workload.sh`` exercises the inner daemon (build, run, compose,
buildx, network) and prints what it saw; the tests read that and check isolation from the host
with the docker SDK.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import BASE_IMAGE, IMAGE_NAME, PACKAGES_MODE, dind_args, run_rocker

pytestmark = pytest.mark.integration


def without_ansi(text: str) -> str:
    # Compose 2.26 erases lines with escape codes even under --ansi never.
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def values(output: str) -> dict:
    return dict(re.findall(r"^([a-z-]+)=(.*)$", output, re.M))


def host_state(engine) -> tuple:
    containers = {c.id for c in engine.containers.list(all=True)}
    volumes = {v.name for v in engine.volumes.list()}
    return containers, volumes


@pytest.fixture(scope="module")
def nested(engine, tmp_path_factory, static_busybox):
    """One rocker --docker-in-docker run of the nested workload, with the host's view of it."""
    import shutil
    from pathlib import Path

    work = tmp_path_factory.mktemp("work")
    data = Path(__file__).parent / "data"
    for item in data.iterdir():
        shutil.copy(item, work / item.name)
    shutil.copy(static_busybox, work / "busybox")
    (work / "nested-workload.sh").chmod(0o755)

    probe = "deps-rocker-inner-probe:isolation"
    host_only = "deps-rocker-host-only:isolation"
    engine.images.get(BASE_IMAGE).tag(host_only)
    before = host_state(engine)
    try:
        result = run_rocker(
            *dind_args(),
            "--env",
            f"PROBE_IMAGE={probe}",
            f"HOST_ONLY_IMAGE={host_only}",
            "--volume",
            f"{work}:/work",
            "--",
            IMAGE_NAME.split(":")[0] and BASE_IMAGE,
            "/work/nested-workload.sh",
        )
    finally:
        engine.images.remove(host_only)
    after = host_state(engine)
    return {
        "result": result,
        "values": values(result.stdout),
        "probe": probe,
        "before": before,
        "after": after,
    }


def test_rocker_help_lists_the_extension(engine):
    # rocker's --network asks the engine for its networks, so --help needs an engine.
    import subprocess

    from conftest import rocker_executable

    output = subprocess.run(
        [rocker_executable(), "--help"], capture_output=True, text=True, check=True
    ).stdout
    output = " ".join(output.split())  # argparse wraps lines at the terminal's width
    assert "--docker-in-docker " in output
    assert "--docker-in-docker-packages {docker-ce,distro}" in output
    assert "isolated from the host's daemon" in output


def test_workload_succeeds(nested):
    result = nested["result"]
    assert result.returncode == 0, result.stdout[-4000:]
    assert re.search(r"docker-in-docker: inner daemon ready in \d+\.\d\ds", result.stdout)


def test_inner_build_and_run(nested):
    assert nested["values"]["inner-run"] == "hello from an inner container"


def test_inner_compose_service(nested):
    assert re.search(
        r"^compose: probe-1 +\| hello from a compose service$",
        without_ansi(nested["result"].stdout),
        re.M,
    ), nested["result"].stdout[-3000:]


def test_inner_buildx_build(nested):
    assert nested["values"]["buildx-run"] == "built by buildx"


def test_inner_container_reaches_the_network(nested):
    assert nested["values"]["inner-network"] == "ok"


def test_inner_daemon_is_not_the_hosts(nested, engine):
    inner_id = nested["values"]["inner-daemon-id"]
    assert inner_id
    assert inner_id != engine.info()["ID"]


def test_inner_images_stay_inside(nested, engine):
    inner_images = nested["values"]["inner-images"].split()
    assert nested["probe"] in inner_images
    assert not engine.images.list(name=nested["probe"].split(":")[0])


def test_host_images_stay_outside(nested):
    assert nested["values"]["host-image-inside"] == "absent"


def test_nothing_left_on_the_host(nested):
    containers_before, volumes_before = nested["before"]
    containers_after, volumes_after = nested["after"]
    assert containers_after - containers_before == set()
    assert volumes_after - volumes_before == set()


@pytest.mark.parametrize("status", [0, 1, 42])
def test_exit_status_comes_through(engine, workdir, status):
    result = run_rocker(
        *dind_args("--volume", f"{workdir}:/work", "--"),
        BASE_IMAGE,
        "/work/exit-with.sh",
        str(status),
    )
    assert "inner daemon " in result.stdout
    assert result.returncode == status, result.stdout[-3000:]


def test_without_command_the_base_cmd_runs(engine, tmp_path, unique):
    base = f"deps-rocker-test-cmd:{unique}"
    (tmp_path / "Dockerfile").write_text(
        f'FROM {BASE_IMAGE}\nCMD ["sh", "-c", "echo base cmd ran; docker ps -q | wc -l"]\n'
    )
    engine.images.build(path=str(tmp_path), tag=base, rm=True)
    try:
        result = run_rocker(*dind_args(), base)
    finally:
        engine.images.remove(base, force=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"^base cmd ran\n0$", result.stdout, re.M)


def test_default_run_leaves_no_image_container_or_volume(engine, workdir):
    """Plain rocker, no --image-name: everything it made is gone afterwards."""
    images_before = {i.id for i in engine.images.list(all=True)}
    containers_before, volumes_before = host_state(engine)
    result = run_rocker(
        "--docker-in-docker",
        "--docker-in-docker-packages",
        PACKAGES_MODE,
        "--volume",
        f"{workdir}:/work",
        "--",
        BASE_IMAGE,
        "/work/exit-with.sh",
        "0",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    containers_after, volumes_after = host_state(engine)
    assert containers_after == containers_before
    assert volumes_after == volumes_before
    # The build may reuse cached layers and even an image that existed before: what matters is
    # that nothing new stays behind.
    assert {i.id for i in engine.images.list(all=True)} <= images_before


def test_daemon_that_cannot_start_fails_clearly(engine, workdir):
    (workdir / "daemon.json").write_text('{"storage-driver": "no-such-driver"')
    result = run_rocker(
        *dind_args(
            "--docker-in-docker-timeout",
            "20",
            "--volume",
            f"{workdir}/daemon.json:/etc/docker/daemon.json",
            "--",
        ),
        BASE_IMAGE,
        "/work/exit-with.sh",
        "0",
    )
    assert result.returncode != 0
    assert "docker-in-docker: ERROR: dockerd exited before its API answered" in result.stdout
    assert "last lines of /var/log/docker-in-docker/dockerd.log" in result.stdout
    assert "daemon.json" in result.stdout
    assert "inner daemon 2" not in result.stdout  # exit-with.sh never ran


def test_base_image_config_is_read_from_the_engine(engine):
    from deps_rocker.docker_in_docker import DockerInDocker

    config = DockerInDocker()._base_image_config({"base_image": BASE_IMAGE})
    assert config["Cmd"] == json.loads(
        json.dumps(engine.images.get(BASE_IMAGE).attrs["Config"]["Cmd"])
    )
