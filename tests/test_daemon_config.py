"""The inner daemon's configuration end to end: rocker's options reach dockerd, the MTU follows
the container's network, overlay2 falls back where it cannot work, the inner store can live in
a named volume that one container at a time may use, and host images can be loaded inside.

Every name these tests give the host's engine starts with deps-rocker-cfg-, and is removed
afterwards.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import time
from pathlib import Path

import docker
import pytest
from conftest import BASE_IMAGE, IMAGE_NAME, dind_args, run_rocker

pytestmark = pytest.mark.integration

READY = re.compile(r"docker-in-docker: inner daemon ready in \d+\.\d\ds")

# What a user might keep as their inner daemon's settings.
DAEMON_CONFIG = """{
  "labels": ["deps-rocker-cfg=from-file"],
  "registry-mirrors": ["https://mirror-from-file.invalid"]
}
"""

# Prints what the inner daemon was configured with, as key=value lines.
SHOW_CONFIG = """#!/bin/sh
set -eu
info() { docker info --format "$1"; }
echo "driver=$(info '{{.Driver}}')"
echo "mirrors=$(info '{{range .RegistryConfig.Mirrors}}{{.}} {{end}}')"
echo "insecure-hosts=$(info '{{range .RegistryConfig.IndexConfigs}}{{if not .Secure}}{{.Name}} \
{{end}}{{end}}')"
echo "insecure-cidrs=$(info '{{range .RegistryConfig.InsecureRegistryCIDRs}}{{.}} {{end}}')"
echo "labels=$(info '{{range .Labels}}{{.}} {{end}}')"
echo "debug=$(info '{{.Debug}}')"
echo "http-proxy=$(info '{{.HTTPProxy}}')"
echo "no-proxy=$(info '{{.NoProxy}}')"
docker network create deps-rocker-cfg-inner >/dev/null
echo "network-subnet=$(docker network inspect deps-rocker-cfg-inner \
    --format '{{range .IPAM.Config}}{{.Subnet}}{{end}}')"
"""

# Checks the MTU of the inner bridge and of a user-defined network, then fetches a file of
# several MB from Debian's archive in an inner container on that network: large packets are
# what a too-large MTU loses.
MTU_CHECK = """#!/bin/sh
set -eu
cd /work
docker build -q -t deps-rocker-cfg-probe . >/dev/null
echo "bridge-mtu=$(docker network inspect bridge \
    --format '{{index .Options "com.docker.network.driver.mtu"}}')"
docker network create deps-rocker-cfg-inner >/dev/null
echo "network-mtu=$(docker network inspect deps-rocker-cfg-inner \
    --format '{{index .Options "com.docker.network.driver.mtu"}}')"
echo "network-eth0-mtu=$(docker run --rm --network deps-rocker-cfg-inner deps-rocker-cfg-probe \
    cat /sys/class/net/eth0/mtu)"
url=http://deb.debian.org/debian/dists/trixie/main/binary-amd64/Packages.xz
echo "fetched-bytes=$(docker run --rm --network deps-rocker-cfg-inner deps-rocker-cfg-probe \
    sh -c "timeout 120 wget -q -O - $url | wc -c")"
"""

# Builds an inner image into the store unless it is there already, says which, and, given
# "hold", keeps the daemon running.
STORE_CHECK = """#!/bin/sh
set -eu
cd /work
if docker image inspect deps-rocker-cfg-kept >/dev/null 2>&1; then
    echo "kept-image=present"
else
    echo "kept-image=absent"
    docker build -q -t deps-rocker-cfg-kept . >/dev/null
fi
if [ "${1:-}" = hold ]; then
    echo "holding the store"
    exec sleep infinity
fi
"""


def values(output: str) -> dict:
    return dict(re.findall(r"^([a-z0-9-]+)=(.*)$", output, re.M))


def script(folder: Path, name: str, text: str) -> str:
    """Write a script into the folder mounted at /work; its path inside."""
    (folder / name).write_text(text)
    (folder / name).chmod(0o755)
    return f"/work/{name}"


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up after {timeout}s waiting for {predicate.__doc__}")


@pytest.fixture(scope="module")
def configured(engine, tmp_path_factory):
    """One rocker run with every daemon.json option, a proxy and a daemon.json of the
    container's own, printing what dockerd got."""
    work = tmp_path_factory.mktemp("configured")
    work.chmod(0o755)
    (work / "daemon.json").write_text(DAEMON_CONFIG)
    # The container's own: its labels lose to rocker's settings, its debug stays, and its
    # insecure registry stays beside the ones rocker adds.
    (work / "etc-daemon.json").write_text(
        '{"debug": true, "labels": ["overridden"], "insecure-registries": ["own.invalid:5000"]}\n'
    )
    show = script(work, "show-config.sh", SHOW_CONFIG)
    result = run_rocker(
        *dind_args(
            *("--docker-in-docker-daemon-config", str(work / "daemon.json")),
            *("--docker-in-docker-storage-driver", "vfs"),
            *("--docker-in-docker-registry-mirror", "https://mirror.invalid:5000"),
            *("--docker-in-docker-insecure-registry", "registry.invalid:5000"),
            *("--docker-in-docker-insecure-registry", "10.99.0.0/16"),
            *("--docker-in-docker-address-pool", "10.201.0.0/16/24"),
            # Never contacted: these tests pull nothing.
            *("--env", "HTTP_PROXY=http://proxy.invalid:3128", "NO_PROXY=localhost"),
            *("--volume", f"{work}:/work", f"{work}/etc-daemon.json:/etc/docker/daemon.json"),
            "--",
        ),
        BASE_IMAGE,
        show,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    return {"output": result.stdout, "values": values(result.stdout)}


def test_storage_driver_option_is_used(configured):
    assert configured["values"]["driver"] == "vfs"
    assert "docker-in-docker: storage driver: vfs (rocker's settings)" in configured["output"]


def test_config_file_and_mirror_options_reach_the_daemon(configured):
    assert configured["values"]["labels"].split() == ["deps-rocker-cfg=from-file"]
    assert configured["values"]["mirrors"].split() == [
        "https://mirror-from-file.invalid/",
        "https://mirror.invalid:5000/",
    ]


def test_containers_own_daemon_json_is_merged_under_rockers_settings(configured):
    assert configured["values"]["debug"] == "true"
    assert "overridden" not in configured["values"]["labels"]
    merged = "docker-in-docker: configuration: /etc/docker/daemon.json, with rocker's settings"
    assert merged in configured["output"]


def test_insecure_registries_reach_the_daemon(configured):
    assert sorted(configured["values"]["insecure-hosts"].split()) == [
        "own.invalid:5000",
        "registry.invalid:5000",
    ]
    assert "10.99.0.0/16" in configured["values"]["insecure-cidrs"].split()


def test_address_pool_gives_the_subnets(configured):
    subnet = configured["values"]["network-subnet"]
    assert re.fullmatch(r"10\.201\.\d+\.0/24", subnet), subnet


def test_proxy_variables_reach_the_daemon(configured):
    assert configured["values"]["http-proxy"] == "http://proxy.invalid:3128"
    assert configured["values"]["no-proxy"] == "localhost"
    assert (
        "docker-in-docker: proxy: the inner daemon pulls through HTTP_PROXY, NO_PROXY"
        in (configured["output"])
    )


@pytest.fixture
def small_mtu_network(engine, unique):
    """A host network with the MTU of our test machines' eth0 (1400), below Docker's 1500."""
    network = engine.networks.create(
        f"deps-rocker-cfg-mtu-{unique}", options={"com.docker.network.driver.mtu": "1400"}
    )
    yield network.name
    network.remove()


def test_mtu_follows_the_container_network(small_mtu_network, workdir):
    result = run_rocker(
        *dind_args("--network", small_mtu_network, "--volume", f"{workdir}:/work", "--"),
        BASE_IMAGE,
        script(workdir, "mtu-check.sh", MTU_CHECK),
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert "docker-in-docker: mtu: 1400 (the container's eth0)" in result.stdout
    assert "docker-in-docker: storage driver: overlay2 (default)" in result.stdout
    seen = values(result.stdout)
    assert seen["bridge-mtu"] == seen["network-mtu"] == seen["network-eth0-mtu"] == "1400"
    assert int(seen["fetched-bytes"]) > 2_000_000


def test_overlay2_falls_back_where_it_cannot_work_and_docker_driver_is_ignored(
    engine, workdir, unique
):
    """A plain `docker run` of the image without the volume rocker adds: /var/lib/docker is
    then on the container's own overlay filesystem, where overlay2 cannot work. DOCKER_DRIVER
    names the driver that would fail, so a daemon that starts proves it was ignored."""
    built = run_rocker(*dind_args(), BASE_IMAGE, "true")  # the image of these options
    assert built.returncode == 0, built.stdout[-3000:]
    container = engine.containers.run(
        IMAGE_NAME,
        ["sh", "-c", "docker info --format 'driver={{.Driver}}'"],
        name=f"deps-rocker-cfg-fallback-{unique}",
        privileged=True,
        environment={"DOCKER_DRIVER": "overlay2"},
        detach=True,
    )
    try:
        status = container.wait(timeout=120)["StatusCode"]
        output = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True, v=True)
    assert status == 0, output
    assert "docker-in-docker: WARNING: overlay2 cannot work on /var/lib/docker" in output
    assert "using vfs instead" in output
    assert "docker-in-docker: DOCKER_DRIVER=overlay2 is set in the container and ignored" in output
    assert "driver=vfs" in output


def test_option_dockerd_refuses_in_rockers_settings_fails_the_build(tmp_path):
    # Python checks only the keys the options also set; dockerd judges the rest when the image
    # is built, so that a command that starts before the daemon answers never meets it.
    (tmp_path / "daemon.json").write_text('{"no-such-option": true}\n')
    result = run_rocker(
        *dind_args("--docker-in-docker-daemon-config", str(tmp_path / "daemon.json")),
        BASE_IMAGE,
        "echo",
        "command ran",
    )
    assert result.returncode != 0
    assert "docker-in-docker: ERROR: dockerd" in result.stdout, result.stdout[-3000:]
    assert "refuses rocker's settings for the inner daemon" in result.stdout
    assert "no-such-option" in result.stdout
    assert "command ran" not in result.stdout


def test_option_dockerd_refuses_in_a_mounted_daemon_json_fails_with_its_log(workdir):
    (workdir / "daemon.json").write_text('{"no-such-option": true}\n')
    result = run_rocker(
        *dind_args(
            *("--docker-in-docker-timeout", "20"),
            *("--volume", f"{workdir}/daemon.json:/etc/docker/daemon.json", "--"),
        ),
        BASE_IMAGE,
        "/work/exit-with.sh",
        "0",
    )
    assert result.returncode != 0
    assert "docker-in-docker: configuration: /etc/docker/daemon.json, with rocker's" in (
        result.stdout
    )
    # Only dockerd can judge this file, so the command waits for its verdict, and never runs.
    assert (
        "docker-in-docker: the command waits until the inner daemon answers: "
        "/etc/docker/daemon.json is only judged by dockerd" in result.stdout
    )
    assert "exit-with.sh ran" not in result.stdout
    assert "docker-in-docker: ERROR: dockerd exited before its API answered" in result.stdout
    assert "last lines of /var/log/docker-in-docker/dockerd.log" in result.stdout
    # dockerd's own complaint, from the log's tail, about the one file it reads
    assert "unable to configure the Docker daemon with file /run/docker-in-docker/daemon.json" in (
        result.stdout
    )
    assert "no-such-option" in result.stdout


@pytest.mark.parametrize(
    "args, says",
    [
        (
            ["--docker-in-docker-daemon-config", "{data}/broken.json"],
            "{data}/broken.json: not valid JSON at line 2, column 1",
        ),
        (
            ["--docker-in-docker-daemon-config", "{data}/list.json"],
            "{data}/list.json: holds a list",
        ),
        (
            ["--docker-in-docker-packages", "distro", "--docker-in-docker-version", "27.3.1"],
            "--docker-in-docker-version 27.3.1 needs --docker-in-docker-packages docker-ce",
        ),
        (
            ["--docker-in-docker-load", "deps-rocker-cfg-absent:none", "--"],
            "the host's engine has no image 'deps-rocker-cfg-absent:none'",
        ),
        (["--docker-in-docker-storage-driver", "aufs"], "invalid choice: 'aufs'"),
        (["--docker-in-docker-mtu", "9"], "'9' is not an MTU"),
        (["--docker-in-docker-registry-mirror", "mirror.invalid"], "'mirror.invalid'"),
        (["--docker-in-docker-insecure-registry", "https://r.invalid"], "leave out the scheme"),
        (["--docker-in-docker-address-pool", "10.0.0.0/8"], "'10.0.0.0/8'"),
        (["--docker-in-docker-volume", "/srv/dind"], "'/srv/dind' is not a volume name"),
    ],
)
def test_refused_before_anything_is_built(engine, tmp_path, args, says):
    (tmp_path / "broken.json").write_text('{"debug": true,\n}\n')
    (tmp_path / "list.json").write_text('["debug"]\n')
    args = [arg.replace("{data}", str(tmp_path)) for arg in args]
    result = run_rocker("--docker-in-docker", *args, BASE_IMAGE, "true")
    assert result.returncode == 2, result.stdout[-3000:]
    assert says.replace("{data}", str(tmp_path)) in " ".join(result.stdout.split())
    assert "Writing dockerfile" not in result.stdout


@pytest.fixture
def store_volume(engine, unique):
    """A named volume for the inner store, and the containers that used it; all removed after."""
    volume = f"deps-rocker-cfg-store-{unique}"
    containers = []
    yield volume, containers
    for name in containers:
        with contextlib.suppress(docker.errors.NotFound):
            engine.containers.get(name).remove(force=True)
    with contextlib.suppress(docker.errors.NotFound):
        engine.volumes.get(volume).remove(force=True)


def on_volume(volume: str, workdir: Path, *extra: str) -> list:
    return dind_args("--docker-in-docker-volume", volume, *extra, "--volume", f"{workdir}:/work")


def test_named_volume_keeps_inner_images_between_runs(store_volume, workdir):
    volume, _ = store_volume
    check = script(workdir, "store-check.sh", STORE_CHECK)
    first = run_rocker(*on_volume(volume, workdir), "--", BASE_IMAGE, check)
    assert first.returncode == 0, first.stdout[-3000:]
    assert values(first.stdout)["kept-image"] == "absent"

    second = run_rocker(*on_volume(volume, workdir), "--", BASE_IMAGE, check)
    assert second.returncode == 0, second.stdout[-3000:]
    assert values(second.stdout)["kept-image"] == "present"
    # A clean stop releases the store: nothing stale for the second run to clear.
    assert "stale" not in second.stdout


def test_one_container_at_a_time_on_a_named_volume(engine, store_volume, workdir, unique):
    volume, containers = store_volume
    check = script(workdir, "store-check.sh", STORE_CHECK)
    holder_name = f"deps-rocker-cfg-holder-{unique}"
    containers.append(holder_name)
    started = run_rocker(
        *on_volume(volume, workdir, "--detach", "--nocleanup", "--name", holder_name),
        "--",
        BASE_IMAGE,
        check,
        "hold",
    )
    assert started.returncode == 0, started.stdout[-3000:]
    holder = engine.containers.get(holder_name)

    def holding():
        """the holder's daemon and inner image"""
        return "holding the store" in holder.logs().decode(errors="replace")

    wait_for(holding)

    # A second container on the same store is refused, naming the holder...
    second = run_rocker(*on_volume(volume, workdir), "--", BASE_IMAGE, check)
    assert second.returncode != 0
    assert f"volume {volume}) is in use by the inner daemon of container {holder.id[:12]}" in (
        " ".join(second.stdout.split())
    )
    assert "kept-image" not in second.stdout

    # ... and the holder's daemon is unharmed.
    exit_code, output = holder.exec_run(["docker", "run", "--rm", "deps-rocker-cfg-kept"])
    assert exit_code == 0, output
    assert b"hello from an inner container" in output

    # A killed holder leaves a lock file naming it, but no lock: the next run takes over.
    holder.kill()
    third = run_rocker(*on_volume(volume, workdir), "--", BASE_IMAGE, check)
    assert third.returncode == 0, third.stdout[-3000:]
    assert f"was left locked by container {holder.id[:12]}" in " ".join(third.stdout.split())
    assert "that lock is stale: cleared" in third.stdout
    assert values(third.stdout)["kept-image"] == "present"


@pytest.fixture
def host_only_image(engine, workdir, unique):
    """A small image that exists only on the host: busybox, FROM scratch."""
    tag = f"deps-rocker-cfg-load:{unique}"
    engine.images.build(path=str(workdir), tag=tag, rm=True)
    yield tag
    engine.images.remove(tag, force=True)


def test_loaded_host_image_runs_inside(host_only_image, workdir):
    result = run_rocker(
        *dind_args(
            "--docker-in-docker-load", host_only_image, "--volume", f"{workdir}:/work", "--"
        ),
        BASE_IMAGE,
        script(workdir, "run-loaded.sh", f"#!/bin/sh\ndocker run --rm {host_only_image}\n"),
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "docker-in-docker: saved 1 host image(s) for the inner daemon" in result.stdout
    assert f"docker-in-docker: loaded host image(s) {host_only_image} in " in result.stdout
    assert "hello from an inner container" in result.stdout
    # The archives' folder on the host is gone once rocker is done.
    run_line = next(line for line in result.stdout.splitlines() if line.startswith("docker run"))
    mounts = [
        arg for arg in shlex.split(run_line) if arg.endswith(":/run/docker-in-docker/load:ro")
    ]
    assert len(mounts) == 1
    assert not Path(mounts[0].split(":")[0]).exists()


# apt-cache madison as Docker's repository answers it, newest first.
MADISON = """\
 docker-ce | 5:27.3.1-1~debian.13~trixie | https://download.docker.com/linux/debian trixie/stable amd64 Packages
 docker-ce | 5:27.3.0-1~debian.13~trixie | https://download.docker.com/linux/debian trixie/stable amd64 Packages
 docker-ce | 5:27.10.2-1~debian.13~trixie | https://download.docker.com/linux/debian trixie/stable amd64 Packages
 docker-ce | 5:26.1.4-1~debian.13~trixie | https://download.docker.com/linux/debian trixie/stable amd64 Packages
"""  # noqa: E501 - apt's own lines

# Stand-ins for the programs install-docker asks in docker-ce mode, as download.docker.com is
# out of reach here: apt-get records what it is asked to install, apt-cache answers from above.
STUBS = {
    "apt-get": '#!/bin/sh\n[ "$1" = install ] && echo "$*" >>/stubs/installed\nexit 0\n',
    "apt-cache": (
        "#!/bin/sh\n"
        'case "$1" in\n'
        "    policy) echo '  Candidate: 5:27.3.1-1~debian.13~trixie' ;;\n"
        "    madison) cat /stubs/madison ;;\n"
        "esac\n"
    ),
    "curl": '#!/bin/sh\nwhile [ "$1" != -o ]; do shift; done\ntouch "$2"\n',
    "dockerd": "#!/bin/sh\n",
    "docker": '#!/bin/sh\n[ "$1" = --version ] && echo "Docker version (stub)"\nexit 0\n',
}


@pytest.mark.parametrize(
    "version, pinned",
    [
        ("27.3.1", "5:27.3.1-1~debian.13~trixie"),
        ("27.3", "5:27.3.1-1~debian.13~trixie"),
        ("27", "5:27.10.2-1~debian.13~trixie"),
        ("26.1.4", "5:26.1.4-1~debian.13~trixie"),
    ],
)
def test_install_docker_pins_the_docker_ce_release(engine, tmp_path, unique, version, pinned):
    output, status, installed = install_docker_with_stubs(engine, tmp_path, unique, version)
    assert status == 0, output
    assert f"docker-ce={pinned} docker-ce-cli={pinned} containerd.io" in installed, output


def test_install_docker_lists_the_releases_when_the_version_is_unknown(engine, tmp_path, unique):
    output, status, installed = install_docker_with_stubs(engine, tmp_path, unique, "25.0")
    assert status == 1
    assert (
        "docker-in-docker: ERROR: Docker's apt repository has no Docker 25.0 for Debian GNU/Linux"
        in output
    )
    assert "it has: 27.10.2, 27.3.1, 27.3.0, 26.1.4" in output
    assert "docker-ce" not in installed


def install_docker_with_stubs(engine, folder: Path, unique: str, version: str) -> tuple:
    """Run the real install-docker in docker-ce mode with --version in a throwaway container of
    the base image, the network programs replaced by stubs."""
    stubs = folder / "stubs"
    stubs.mkdir()
    for name, text in STUBS.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    (stubs / "madison").write_text(MADISON)
    (stubs / "installed").write_text("")
    source = Path(__file__).parent.parent / "deps_rocker/files/docker_in_docker/install-docker"
    container = engine.containers.run(
        BASE_IMAGE,
        ["sh", "/install-docker", "--version", version, "docker-ce"],
        name=f"deps-rocker-cfg-install-{unique}",
        environment={"PATH": "/stubs:/usr/sbin:/usr/bin:/sbin:/bin"},
        volumes={
            str(stubs): {"bind": "/stubs", "mode": "rw"},
            str(source): {"bind": "/install-docker", "mode": "ro"},
        },
        detach=True,
    )
    try:
        status = container.wait(timeout=60)["StatusCode"]
        output = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    return output, status, (stubs / "installed").read_text()


def test_containerd_image_store_builds_and_runs(engine, workdir):
    """With the containerd image store, "storage-driver" names a snapshotter: overlay2 is none,
    so containerd keeps its own overlayfs."""
    (workdir / "inner-daemon.json").write_text(
        '{"log-level": "warn", "features": {"containerd-snapshotter": true}}'
    )
    result = run_rocker(
        *dind_args(
            "--docker-in-docker-daemon-config",
            str(workdir / "inner-daemon.json"),
            "--volume",
            f"{workdir}:/work",
            "--",
        ),
        BASE_IMAGE,
        "/work/build-and-run.sh",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "inner-run=ok" in result.stdout
    assert "driver=overlayfs" in result.stdout
    assert "storage driver: containerd's overlayfs snapshotter" in result.stdout
