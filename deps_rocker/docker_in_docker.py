"""``--docker-in-docker``: a Docker daemon of the container's own, isolated from the host's.

The extension

- installs Docker in the image (``--docker-in-docker-packages``: Docker's apt repository,
  ``docker-ce``, by default; the base distribution's own packages with ``distro``);
- adds ``--privileged`` and an anonymous volume on ``/var/lib/docker`` to ``docker run``: the
  inner daemon needs the first, and overlay2 cannot live on the container's own overlay
  filesystem; anonymous, so every container has its own store, removed with it under ``--rm``;
- ships an entrypoint (``files/docker_in_docker/``) that starts the inner daemon, waits until
  its API answers (``--docker-in-docker-timeout``), runs the command and stops the daemon
  cleanly, with Docker's own init as PID 1.

A derived image that sets ENTRYPOINT loses the base image's ENTRYPOINT and CMD, so both are
read from the base image when the Dockerfile is generated: the base entrypoint runs after the
daemon is up, and with no command the base CMD runs.
"""

from __future__ import annotations

import json
import os
import shlex

from rocker.core import get_docker_client, get_user_name

from .extension import SimpleRockerExtension

PACKAGES_MODES = ("docker-ce", "distro")
DEFAULT_TIMEOUT = 60
MAX_TIMEOUT = 3600

INIT = "/usr/bin/docker-init"
ENTRYPOINT = "/usr/local/lib/deps-rocker/entrypoint"
INNER_SOCKET = "/var/run/docker.sock"
# Where a host daemon's socket usually is; DOCKER_HOST may name another.
HOST_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


def _timeout(text: str) -> int:
    """argparse type for --docker-in-docker-timeout; its message names the bad value."""
    try:
        seconds = int(text)
    except ValueError:
        seconds = 0
    if not 1 <= seconds <= MAX_TIMEOUT:
        raise ValueError(text)
    return seconds


_timeout.__name__ = f"whole number of seconds from 1 to {MAX_TIMEOUT}"


class DockerInDocker(SimpleRockerExtension):
    name = "docker_in_docker"
    help = (
        "run a Docker daemon of the container's own: docker, docker compose and docker buildx "
        "work inside, isolated from the host's daemon (adds --privileged)"
    )

    @classmethod
    def register_options(cls, parser, defaults):
        parser.add_argument(
            "--docker-in-docker-packages",
            choices=PACKAGES_MODES,
            default=defaults.get("docker_in_docker_packages", "docker-ce"),
            help="where Docker is installed from: Docker's apt repository (docker-ce) or the "
            "base distribution's own packages (distro)",
        )
        parser.add_argument(
            "--docker-in-docker-timeout",
            type=_timeout,
            metavar="SECONDS",
            default=defaults.get("docker_in_docker_timeout", DEFAULT_TIMEOUT),
            help="how long the entrypoint waits for the inner daemon's API before it gives up",
        )

    def validate_environment(self, cliargs, parser):
        """Refuse, before anything is built, what would break the inner daemon's isolation."""
        if not cliargs.get(self.name):
            return
        if cliargs.get("network") == "host":
            parser.error(
                "--docker-in-docker cannot be combined with --network host: the inner daemon "
                "would rewrite the host's iptables rules and create its bridge on the host. "
                "Leave --network out (inner containers reach the network through the "
                "container's), and publish ports with --port where the host must reach them"
            )
        for host_path, container_path in _volumes(cliargs):
            if _exposes_host_socket(host_path):
                parser.error(
                    f"--volume {host_path}:{container_path} mounts the host's Docker socket "
                    "into a --docker-in-docker container: commands inside would drive the host's "
                    "daemon (Docker-out-of-Docker) and nothing would be isolated. Drop that "
                    "volume: the container has a daemon of its own; to use a host image inside, "
                    "docker save it to a file in a mounted folder and docker load it there"
                )

    def invoke_after(self, cliargs):
        # The user extension creates the user that our snippet adds to the docker group.
        return {"user"}

    def template_args(self, cliargs):
        base = self._base_image_config(cliargs)
        ours = [INIT, "-g", "--", ENTRYPOINT]
        base_entrypoint = base.get("Entrypoint") or []
        # A base built by this extension already starts with ours: run it once, not twice.
        if base_entrypoint[: len(ours)] == ours:
            base_entrypoint = base_entrypoint[len(ours) :]
        entrypoint = [*ours, *base_entrypoint]
        cmd = base.get("Cmd")
        # rocker writes USER root before the snippets and never resets it: a base image that
        # runs as another user gets that user back in the user snippet, unless --user decides.
        base_user = (base.get("User") or "").split(":")[0]
        restore_user = "" if cliargs.get("user") or base_user in ("", "root", "0") else base_user
        return {
            "packages_mode": cliargs.get("docker_in_docker_packages") or "docker-ce",
            "docker_group_user": _rocker_user(cliargs) or restore_user,
            "restore_user": base.get("User") if restore_user else "",
            "inner_socket": INNER_SOCKET,
            "entrypoint": json.dumps(entrypoint),
            "cmd": json.dumps(cmd) if cmd else "",
        }

    def get_docker_args(self, cliargs):
        timeout = cliargs.get("docker_in_docker_timeout") or DEFAULT_TIMEOUT
        args = [
            "--privileged",
            "--volume",
            "/var/lib/docker",
            "--env",
            f"DEPS_ROCKER_DIND_TIMEOUT={timeout}",
        ]
        # rocker glues every extension's arguments into one string: start with a space.
        return " " + shlex.join(args)

    def _base_image_config(self, cliargs) -> dict:
        """The base image's Config (Entrypoint, Cmd, User, ...), from the host's engine."""
        image = cliargs.get("base_image") or cliargs.get("image")
        if not image:
            return {}
        return get_docker_client().inspect_image(image).get("Config") or {}


def _rocker_user(cliargs) -> str:
    """The name rocker's --user extension gives the user in the image, or '' without it."""
    if not cliargs.get("user"):
        return ""
    return cliargs.get("user_override_name") or get_user_name()


def _volumes(cliargs):
    """(host path, container path) of every rocker --volume, as rocker's volume extension reads
    them: HOST[:CONTAINER[:OPTIONS]], CONTAINER defaulting to HOST."""
    for group in cliargs.get("volume") or []:
        for spec in group:
            parts = spec.split(":")
            host = os.path.abspath(parts[0])
            yield host, parts[1] if len(parts) > 1 else host


def _exposes_host_socket(host_path: str) -> bool:
    """True if mounting host_path shows the host daemon's socket: the socket itself or any
    folder above it (/run, /var, /)."""
    sockets = set(HOST_SOCKETS)
    docker_host = os.environ.get("DOCKER_HOST", "")
    if docker_host.startswith("unix://"):
        sockets.add(docker_host[len("unix://") :])
    real = os.path.realpath(host_path)
    for socket in sockets:
        if not os.path.exists(socket) and socket != host_path:
            continue
        real_socket = os.path.realpath(socket)
        if real == real_socket or real_socket.startswith(real.rstrip("/") + "/"):
            return True
        if host_path == socket:
            return True
    return False
