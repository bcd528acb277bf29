"""The entrypoint's whole life on real containers: restart, second shell, stop, base image
entrypoints, signals and zombies."""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import subprocess
import time

import docker
import pytest
from conftest import BASE_IMAGE, dind_args, missing, rocker_executable, run_rocker

pytestmark = pytest.mark.integration

READY = re.compile(r"docker-in-docker: inner daemon ready in \d+\.\d\ds")


def wait_for(predicate, timeout=60.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"gave up after {timeout}s waiting for {predicate.__doc__}")


def logs(container) -> str:
    return container.logs().decode(errors="replace")


def run_inside(container, command: str) -> str:
    exit_code, output = container.exec_run(["sh", "-c", command])
    text = output.decode(errors="replace")
    assert exit_code == 0, f"{command!r} exited {exit_code}: {text}"
    return text


def processes(container, name: str) -> int:
    listing = run_inside(container, "cat /proc/[0-9]*/comm")
    return listing.split().count(name)


@pytest.fixture
def detached(engine, workdir, unique):
    """Start a --docker-in-docker container in the background; remove it and its volume after."""
    names = []

    def start(*command: str, extra=()):
        name = f"deps-rocker-lifecycle-{unique}-{len(names)}"
        names.append(name)
        result = run_rocker(
            *dind_args(
                "--detach",
                "--nocleanup",
                "--name",
                name,
                *extra,
                "--volume",
                f"{workdir}:/work",
                "--",
            ),
            BASE_IMAGE,
            *command,
        )
        assert result.returncode == 0, result.stdout[-3000:]
        container = engine.containers.get(name)

        def ready():
            """the inner daemon's ready line"""
            return READY.search(logs(container))

        wait_for(ready)
        return container

    yield start
    for name in names:
        with contextlib.suppress(docker.errors.NotFound):  # already gone is fine
            engine.containers.get(name).remove(force=True, v=True)


def test_restart_after_kill_keeps_inner_images(detached):
    container = detached("sleep", "infinity")
    run_inside(container, "cd /work && docker build -q -t kept-across-restart .")

    container.kill()
    container.start()

    def ready_twice():
        """a second ready line"""
        return len(READY.findall(logs(container))) == 2

    wait_for(ready_twice)
    output = logs(container)
    assert "removing stale dockerd pid file" in output
    assert "kept-across-restart" in run_inside(
        container, "docker images --format '{{.Repository}}'"
    )
    assert processes(container, "dockerd") == 1


def test_second_shell_finds_the_running_daemon(detached):
    container = detached("sleep", "infinity")
    assert run_inside(container, "docker ps -q") == ""
    # A second entrypoint run, as a `docker exec` of it would do, must not start a second daemon.
    again = run_inside(container, "/usr/local/lib/deps-rocker/entrypoint docker info -f '{{.ID}}'")
    assert again.strip()
    assert processes(container, "dockerd") == 1
    assert processes(container, "containerd") == 1
    assert "ready" not in again  # it did not start anything


def test_stop_with_inner_container_is_clean_and_quick(detached):
    container = detached("sleep", "infinity")
    # busybox sleep as PID 1 has no handler for SIGTERM, so the kernel drops it: the worst
    # case for the inner stop, killed at once. Beside it, one that stops on SIGTERM by itself,
    # and the same under --init, whose docker-init hears the signal without a handler.
    polite = "sh -c 'trap \"exit 0\" TERM; while :; do sleep 0.1; done'"
    run_inside(
        container,
        "cd /work && docker build -q -t probe . >/dev/null"
        " && docker run -d --name inner probe sleep 1000"
        f" && docker run -d --name polite probe {polite}"
        f" && docker run -d --name polite-init --init probe {polite}",
    )

    started = time.monotonic()
    container.stop()  # docker's default grace: 10 s, then SIGKILL
    took = time.monotonic() - started

    container.reload()
    output = logs(container)
    assert took < 8, f"docker stop took {took:.1f}s\n{output}"
    assert container.attrs["State"]["ExitCode"] == 143  # the command's SIGTERM, not SIGKILL
    assert output.index("stopping 3 inner container(s)") < output.index("inner daemon stopped")
    assert "killing 1 inner container(s) whose main process cannot get its stop signal" in output
    assert "did not stop within" not in output


def test_sigint_status_comes_through(detached):
    container = detached("sleep", "infinity")
    container.kill(signal="SIGINT")
    container.wait(timeout=30)
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 130
    assert "inner daemon stopped" in logs(container)


def test_orphans_are_reaped(engine, workdir):
    result = run_rocker(
        *dind_args("--volume", f"{workdir}:/work", "--"), BASE_IMAGE, "/work/orphans.sh"
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "pid1=docker-init" in result.stdout
    assert "zombies=0" in result.stdout


@pytest.fixture
def base_with_entrypoint(engine, tmp_path, unique):
    """A base image whose ENTRYPOINT exports a variable (as a ROS image sources its setup)."""
    tag = f"deps-rocker-test-entrypoint:{unique}"
    (tmp_path / "entry.sh").write_text('#!/bin/sh\nexport BASE_ENTRYPOINT_VAR=sourced\nexec "$@"\n')
    (tmp_path / "entry.sh").chmod(0o755)
    (tmp_path / "Dockerfile").write_text(
        f'FROM {BASE_IMAGE}\nCOPY entry.sh /entry.sh\nENTRYPOINT ["/entry.sh"]\n'
        'CMD ["sh", "-c", "echo base cmd saw $BASE_ENTRYPOINT_VAR"]\n'
    )
    engine.images.build(path=str(tmp_path), tag=tag, rm=True)
    yield tag
    engine.images.remove(tag, force=True)


def test_base_entrypoint_runs_after_the_daemon(base_with_entrypoint, workdir):
    result = run_rocker(
        *dind_args("--volume", f"{workdir}:/work", "--"), base_with_entrypoint, "/work/show-env.sh"
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "base-entrypoint-var=sourced" in result.stdout
    assert "inner-containers=0" in result.stdout


def test_base_cmd_runs_through_base_entrypoint(base_with_entrypoint):
    result = run_rocker(*dind_args(), base_with_entrypoint)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "base cmd saw sourced" in result.stdout


def test_stop_hangs_up_a_command_in_its_own_process_group(detached):
    """An interactive shell ignores SIGTERM in a process group of its own: hung up instead."""
    container = detached("/work/own-group.sh")

    started = time.monotonic()
    container.stop()
    took = time.monotonic() - started

    container.reload()
    output = logs(container)
    assert took < 8, f"docker stop took {took:.1f}s\n{output}"
    assert container.attrs["State"]["ExitCode"] == 129  # SIGHUP, not SIGKILL
    assert "inner daemon stopped" in output


def test_restart_policies_survive_a_container_restart(detached):
    container = detached("sleep", "infinity")
    run_inside(
        container,
        "cd /work && docker build -q -t probe . >/dev/null"
        " && docker run -d --restart unless-stopped --name kept probe sleep 1000 >/dev/null",
    )

    container.restart()  # docker stop, then docker start

    def ready_twice():
        """a second ready line"""
        return len(READY.findall(logs(container))) == 2

    wait_for(ready_twice)

    def inner_back():
        """the unless-stopped inner container running again"""
        return run_inside(container, "docker ps --format '{{.Names}}'").split() == ["kept"]

    wait_for(inner_back, timeout=30)


@pytest.mark.parametrize(
    "command, ran",
    [
        # Stopped by the entrypoint when the daemon fails.
        (["/work/slow-command.sh"], "slow-command.sh started"),
        # Gone before the daemon has said why it failed: the container still says it, and
        # still fails.
        (["/work/exit-with.sh", "0"], "exit-with.sh ran"),
    ],
)
def test_daemon_failing_after_the_command_started_fails_the_container(workdir, command, ran):
    # The store is on ext4 here: dind-daemon refuses btrfs once it looks, after the command
    # has started.
    result = run_rocker(
        *dind_args(
            *("--docker-in-docker-storage-driver", "btrfs"),
            *("--volume", f"{workdir}:/work", "--"),
        ),
        BASE_IMAGE,
        *command,
        timeout=50,
    )
    assert result.returncode == 1, result.stdout[-3000:]
    assert ran in result.stdout
    assert "docker-in-docker: ERROR: the btrfs storage driver needs /var/lib/docker on btrfs" in (
        result.stdout
    )
    assert "slow-command.sh finished" not in result.stdout


def test_stop_before_the_daemon_answers_leaves_it_to_the_commands_clean_up(workdir):
    result = run_rocker(
        *dind_args("--volume", f"{workdir}:/work", "--"), BASE_IMAGE, "/work/early-stop.sh"
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "clean-up reached daemon" in result.stdout


def test_wait_option_runs_the_command_once_the_daemon_answers(workdir):
    result = run_rocker(
        *dind_args("--docker-in-docker-wait", "--volume", f"{workdir}:/work", "--"),
        BASE_IMAGE,
        "/work/exit-with.sh",
        "0",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    output = result.stdout
    assert (
        "docker-in-docker: the command waits until the inner daemon answers: "
        "DEPS_ROCKER_DIND_WAIT=1" in output
    )
    assert READY.search(output).start() < output.index("exit-with.sh ran")


def test_in_a_terminal_the_command_starts_once_the_daemon_answers(workdir):
    # rocker's interactive mode (docker run -it) under a terminal that `script` provides.
    if not shutil.which("script"):
        missing("the integration tests need util-linux's script to give rocker a terminal")
    rocker = [
        rocker_executable(),
        *dind_args("--volume", f"{workdir}:/work", "--"),
        BASE_IMAGE,
        "/work/exit-with.sh",
        "3",
    ]
    result = subprocess.run(
        ["script", "-q", "-e", "-c", shlex.join(rocker), "/dev/null"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    output = result.stdout.replace("\r", "")
    assert result.returncode == 3, output[-3000:]
    assert " -it " in output  # rocker did run it interactively
    assert READY.search(output).start() < output.index("exit-with.sh ran")
    assert "the command waits until" not in output  # no reason to give: a person is there
