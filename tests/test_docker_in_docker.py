"""Docker-in-Docker end to end: the real rocker CLI, a real engine, real nested containers.

One rocker run of ``data/nested-workload.sh`` exercises the inner daemon (build, run, compose,
buildx, network) and prints what it saw; the tests read that and check isolation from the host
with the docker SDK.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from conftest import BASE_IMAGE, PACKAGES_MODE, dind_args, run_rocker

pytestmark = pytest.mark.integration


def without_ansi(text: str) -> str:
    # Compose 2.26 erases lines with escape codes even under --ansi never.
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def values(output: str) -> dict:
    return dict(re.findall(r"^([a-z-]+)=(.*)$", output, re.M))


def host_traces(engine, since: int, name: str) -> tuple:
    """The ids of the containers named `name` since `since`, and the volumes they mounted, as
    the host engine's event log tells; other work on the same engine does not count."""
    until = int(time.time()) + 1
    containers, volumes = set(), set()
    for event in engine.events(since=since, until=until, decode=True):
        attributes = event.get("Actor", {}).get("Attributes", {})
        if event.get("Type") == "container" and attributes.get("name") == name:
            containers.add(event["Actor"]["ID"])
        elif event.get("Type") == "volume" and attributes.get("container") in containers:
            volumes.add(event["Actor"]["ID"])
    return containers, volumes


def assert_gone(engine, containers: set, volumes: set) -> None:
    assert containers, "the engine reported no container of the run"
    assert volumes, "the engine reported no volume of the run (/var/lib/docker)"
    assert not [c for c in engine.containers.list(all=True) if c.id in containers]
    assert not [v for v in engine.volumes.list() if v.name in volumes]


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
    name = f"deps-rocker-isolation-{uuid.uuid4().hex[:12]}"
    since = int(time.time()) - 1
    try:
        result = run_rocker(
            *dind_args(),
            "--name",
            name,
            "--env",
            f"PROBE_IMAGE={probe}",
            f"HOST_ONLY_IMAGE={host_only}",
            "--volume",
            f"{work}:/work",
            "--",
            BASE_IMAGE,
            "/work/nested-workload.sh",
        )
    finally:
        engine.images.remove(host_only)
    return {
        "result": result,
        "values": values(result.stdout),
        "probe": probe,
        "traces": host_traces(engine, since, name),
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


def test_nothing_left_on_the_host(nested, engine):
    assert_gone(engine, *nested["traces"])


@pytest.mark.parametrize("status", [0, 1, 42])
def test_exit_status_comes_through(engine, workdir, status):
    result = run_rocker(
        *dind_args("--volume", f"{workdir}:/work", "--"),
        BASE_IMAGE,
        "/work/exit-with.sh",
        str(status),
    )
    assert "exit-with.sh ran" in result.stdout
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
    # The daemon's lines may come between the two: the command starts before it answers.
    assert re.search(r"^base cmd ran$", result.stdout, re.M)
    assert re.search(r"^0$", result.stdout, re.M)


@pytest.fixture
def labelled_base(engine, tmp_path, unique):
    """The base image under an ID of its own: rocker removes the image of a run by ID, and an
    image built on the shared base would be the very image the other tests keep cached."""
    tag = f"deps-rocker-test-labelled:{unique}"
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nLABEL deps-rocker-test={unique}\n")
    engine.images.build(path=str(tmp_path), tag=tag, rm=True)
    yield tag
    engine.images.remove(tag, force=True)


def test_default_run_leaves_no_image_container_or_volume(engine, workdir, unique, labelled_base):
    """Plain rocker, no --image-name: everything it made is gone afterwards."""
    name = f"deps-rocker-default-{unique}"
    since = int(time.time()) - 1
    result = run_rocker(
        "--docker-in-docker",
        "--docker-in-docker-packages",
        PACKAGES_MODE,
        "--name",
        name,
        "--volume",
        f"{workdir}:/work",
        "--",
        labelled_base,
        "/work/exit-with.sh",
        "0",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert_gone(engine, *host_traces(engine, since, name))
    built = re.search(r"Successfully built ([0-9a-f]{12})", result.stdout).group(1)
    assert not any(i.id.startswith(f"sha256:{built}") for i in engine.images.list(all=True))


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
    # Found before dockerd starts, which reads one file merged from this one and rocker's
    # settings; test_daemon_config.py shows dockerd's own complaint about an unknown option.
    assert re.search(
        r"^docker-in-docker: ERROR: /etc/docker/daemon\.json is not valid JSON: .* line 1, column",
        result.stdout,
        re.M,
    ), result.stdout[-3000:]
    assert "exit-with.sh ran" not in result.stdout


def test_base_image_config_is_read_from_the_engine(engine):
    from deps_rocker.docker_in_docker import DockerInDocker

    config = DockerInDocker()._base_image_config({"base_image": BASE_IMAGE})
    assert config["Cmd"] == json.loads(
        json.dumps(engine.images.get(BASE_IMAGE).attrs["Config"]["Cmd"])
    )
