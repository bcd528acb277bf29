"""Non-root users and companion extensions: the inner daemon serves whoever the container runs
as, and what would break isolation is refused before anything is built."""

from __future__ import annotations

import re

import pytest
from conftest import BASE_IMAGE, IMAGE_NAME, PACKAGES_MODE, dind_args, missing, run_rocker

pytestmark = pytest.mark.integration

# rocker --user creates the host user in the image: a name of its own keeps the image that the
# root runs share free of it.
USER_IMAGE_NAME = IMAGE_NAME.replace("deps-rocker-test:", "deps-rocker-test-user:")


def user_dind_args(*extra: str) -> list:
    """dind_args for rocker --user, under the image name of its own."""
    return [
        "--docker-in-docker",
        "--docker-in-docker-packages",
        PACKAGES_MODE,
        "--image-name",
        USER_IMAGE_NAME,
        "--user",
        *extra,
    ]


def values(output: str) -> dict:
    return dict(re.findall(r"^([a-z0-9-]+)=(.*)$", output, re.M))


def test_rocker_user_as_non_root_host_user(tester, workdir):
    workdir.chmod(0o777)  # the user inside writes a file here
    result = tester(
        *user_dind_args("--volume", f"{workdir}:/work", "--"),
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


def build_image(engine, context, dockerfile: str, tag: str) -> str:
    (context / "Dockerfile").write_text(dockerfile)
    engine.images.build(path=str(context), tag=tag, rm=True)
    return tag


@pytest.fixture
def scratch_images(engine, tmp_path, static_busybox):
    """Builds throwaway base images in a context holding the static busybox; removes them."""
    import shutil

    shutil.copy(static_busybox, tmp_path / "busybox")
    tags = []

    def build(dockerfile: str, tag: str) -> str:
        tags.append(tag)
        return build_image(engine, tmp_path, dockerfile, tag)

    yield build
    for tag in tags:
        engine.images.remove(tag, force=True)


SUPPORTED = "supported bases: Ubuntu 20.04 and later, Debian 11 and later"


@pytest.mark.parametrize(
    "dockerfile, says",
    [
        pytest.param(
            "FROM scratch\n"
            "COPY busybox /bin/busybox\n"
            'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
            "RUN echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd"
            " && printf 'ID=alpine\\nVERSION_ID=3.20.0\\nPRETTY_NAME=\"Alpine Linux v3.20\"\\n'"
            " > /etc/os-release\n",
            f"the base image (Alpine Linux v3.20) has no apt-get; {SUPPORTED}",
            id="no-apt",
        ),
        pytest.param(
            f"FROM {BASE_IMAGE}\n"
            'RUN rm /etc/os-release && printf \'ID=debian\\nVERSION_ID="10"\\n'
            'PRETTY_NAME="Debian GNU/Linux 10 (buster)"\\n\' > /etc/os-release\n',
            f"the base image is Debian GNU/Linux 10 (buster); {SUPPORTED}",
            id="old-release",
        ),
    ],
)
def test_unsupported_base_gets_a_clear_error(scratch_images, unique, dockerfile, says):
    base = scratch_images(dockerfile, f"deps-rocker-test-unsupported:{unique}")
    result = run_rocker(*dind_args(), base, "true")
    assert result.returncode != 0
    assert f"docker-in-docker: ERROR: {says}" in result.stdout
    assert "Executing command" not in result.stdout


def test_dry_run_prints_the_command(engine):
    result = run_rocker(*dind_args(), "--mode", "dry-run", BASE_IMAGE, "docker", "ps")
    assert result.returncode == 0, result.stdout[-3000:]
    command = result.stdout.split("Run this command:")[1]
    assert "--privileged --volume /var/lib/docker" in command
    assert "docker ps" in command


def test_home_docker_context_does_not_leave_the_container(tester, workdir):
    """A ~/.docker that selects a context on another host must not steer the inner CLI.

    rocker itself follows the context too, so on the host DOCKER_HOST points it at the host's
    engine; that variable does not reach the container, the mounted ~/.docker does."""
    import shutil
    import subprocess

    home = tester.account.pw_dir
    config = f"{home}/.docker"

    def as_tester(*command):
        subprocess.run(
            ["runuser", "-u", tester.account.pw_name, "--", "env", f"HOME={home}", *command],
            check=True,
            capture_output=True,
        )

    as_tester("docker", "context", "create", "elsewhere", "--docker", "host=tcp://127.0.0.1:9")
    as_tester("docker", "context", "use", "elsewhere")
    try:
        result = tester(
            *user_dind_args("--home", "--volume", f"{workdir}:/work", "--"),
            BASE_IMAGE,
            "/work/exit-with.sh",
            "0",
            env=["DOCKER_HOST=unix:///var/run/docker.sock"],
        )
    finally:
        shutil.rmtree(config)
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"^inner daemon \S+$", result.stdout, re.M)


@pytest.fixture
def x_display(tmp_path):
    """An Xvfb display with a cookie in its own XAUTHORITY file, as a desktop session has."""
    import secrets
    import shutil
    import subprocess
    import time
    from pathlib import Path

    if not shutil.which("Xvfb") or not shutil.which("xauth"):
        missing("Xvfb and xauth are needed for rocker's --x11; run scripts/provision-test-host.sh")
    number = next(n for n in range(90, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    authority = tmp_path / "xauthority"
    subprocess.run(
        ["xauth", "-f", str(authority), "add", f":{number}", ".", secrets.token_hex(16)],
        check=True,
    )
    server = subprocess.Popen(
        ["Xvfb", f":{number}", "-auth", str(authority), "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    socket = Path(f"/tmp/.X11-unix/X{number}")
    deadline = time.monotonic() + 10
    while not socket.exists():
        assert server.poll() is None and time.monotonic() < deadline, "Xvfb did not start"
        time.sleep(0.05)
    yield {"DISPLAY": f":{number}", "XAUTHORITY": str(authority)}
    server.terminate()
    server.wait(timeout=10)


def test_x11_socket_and_cookie_stay_usable(x_display, workdir):
    result = run_rocker(
        *dind_args("--x11", "--volume", f"{workdir}:/work", "--"),
        BASE_IMAGE,
        "/work/x11-check.sh",
        env=x_display,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    seen = values(result.stdout)
    assert seen.get("x11-socket") == "ok", result.stdout[-3000:]
    assert seen.get("xauthority") == "ok"
    assert seen.get("inner-docker") == "ok"


def test_with_rockers_other_extensions(engine, workdir, unique):
    """--hostname, --name, --env with a space in its value, and rocker's own --privileged."""
    name = f"deps-rocker-companions-{unique}"
    result = run_rocker(
        *dind_args(
            "--privileged",
            "--name",
            name,
            "--hostname",
            "robot-dev",
            "--env",
            "SPACED_VALUE=two words",
            "PROBE_IMAGE=companion-probe",
            "--volume",
            f"{workdir}:/work",
            "--",
        ),
        BASE_IMAGE,
        "/work/companion-check.sh",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    seen = values(result.stdout)
    assert seen["hostname"] == "robot-dev"
    assert seen["spaced"] == "two words"
    assert seen["inner-name"] == "robot-dev"
    assert seen["inner-run"] == "ok"
