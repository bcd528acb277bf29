"""``--docker-in-docker``: a Docker daemon of the container's own, isolated from the host's.

The extension

- installs Docker in the image (``--docker-in-docker-packages``: Docker's apt repository,
  ``docker-ce``, by default; the base distribution's own packages with ``distro``);
- adds ``--privileged`` and an anonymous volume on ``/var/lib/docker`` to ``docker run``: the
  inner daemon needs the first, and overlay2 cannot live on the container's own overlay
  filesystem; anonymous, so every container has its own store, removed with it under ``--rm``;
- ships an entrypoint (``files/docker_in_docker/``) that starts the inner daemon, runs the
  command and stops the daemon cleanly, with Docker's own init as PID 1. In a terminal the
  command starts once the API answers (``--docker-in-docker-timeout``). Without one it starts
  as soon as the daemon's socket is bound, and its first docker call waits there for the
  API, unless ``--docker-in-docker-wait``, or a daemon.json or images to load that only the
  running container has, make it wait too.

The inner daemon's configuration comes in three layers, merged by ``dind-daemon`` when the
container starts, later ones winning: an ``/etc/docker/daemon.json`` in the container (mounted
or baked into the base image); rocker's settings, written at build time to
``/usr/local/lib/deps-rocker/daemon.json`` (``--docker-in-docker-daemon-config`` with the
storage driver, MTU, registry and address-pool options added); and what only the running
container knows (the MTU of its eth0, whether overlay2 works on its ``/var/lib/docker``).
dockerd is then started with that one file and no other option, because it refuses a setting
given both as a flag and in its configuration file.

Two options act at run time instead: ``--docker-in-docker-volume`` keeps the inner store in a
named volume (``dind-daemon`` locks it, so two daemons never share one), and
``--docker-in-docker-load`` saves host images into a folder mounted read-only, which the inner
daemon loads once its API answers.

A derived image that sets ENTRYPOINT loses the base image's ENTRYPOINT and CMD, so both are
read from the base image when the Dockerfile is generated: the base entrypoint runs after the
daemon is up, and with no command the base CMD runs.
"""

from __future__ import annotations

import argparse
import atexit
import copy
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from urllib.parse import urlsplit

import docker
from rocker.core import OPERATIONS_DRY_RUN, get_docker_client, get_user_name

from .extension import SimpleRockerExtension

PACKAGES_MODES = ("docker-ce", "distro")
DEFAULT_TIMEOUT = 60
MAX_TIMEOUT = 3600

# The storage drivers dockerd offers on Linux; overlay2 is the default.
STORAGE_DRIVERS = ("overlay2", "fuse-overlayfs", "btrfs", "zfs", "vfs")
MIN_MTU, MAX_MTU = 68, 65535  # IPv4's smallest MTU, and the largest any link has
MAX_POOL_BITS = 16  # an address pool cuts at most 2**16 networks
MAX_CONFIG_BYTES = 1 << 20  # a daemon.json is a few hundred bytes; refuse what cannot be one

INIT = "/usr/bin/docker-init"
ENTRYPOINT = "/usr/local/lib/deps-rocker/entrypoint"
INNER_SOCKET = "/var/run/docker.sock"
# rocker's part of the inner daemon's daemon.json, in the build context and in the image.
CONFIG_FILE = "docker_in_docker/daemon.json"
INNER_CONFIG = "/usr/local/lib/deps-rocker/daemon.json"
# Where the archives of --docker-in-docker-load appear in the container.
LOAD_FOLDER = "/run/docker-in-docker/load"
# Where a host daemon's socket usually is; DOCKER_HOST may name another.
HOST_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


def _whole_number(text: str) -> int:
    """A whole number written with ASCII digits alone; -1 for anything else (int() would also
    take signs, spaces, underscores and other scripts' digits)."""
    return int(text) if re.fullmatch(r"[0-9]{1,9}", text) else -1


def _timeout(text: str) -> int:
    """argparse type for --docker-in-docker-timeout; its message names the bad value."""
    seconds = _whole_number(text)
    if not 1 <= seconds <= MAX_TIMEOUT:
        raise ValueError(text)
    return seconds


_timeout.__name__ = f"whole number of seconds from 1 to {MAX_TIMEOUT}"


# The argparse types below raise ArgumentTypeError, whose message argparse prints as it is:
# each quotes the bad value and says what would be accepted.


def _mtu(text: str):
    """--docker-in-docker-mtu: 'auto', or a whole number of bytes."""
    if text == "auto":
        return text
    mtu = _whole_number(text)
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not an MTU: give auto (the container's eth0, the default) or a whole "
            f"number of bytes from {MIN_MTU} to {MAX_MTU}, such as 1400"
        )
    return mtu


def _registry_mirror(text: str) -> str:
    """--docker-in-docker-registry-mirror: an http or https URL, as dockerd accepts one."""
    try:
        url = urlsplit(text)
        url.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        url = None
    if (
        not url
        or url.scheme not in ("http", "https")
        or not url.hostname
        or url.query
        or url.fragment
        or not re.fullmatch(r"[\x21-\x7e]+", text)  # printable ASCII, no spaces
        or "\\" in text
        or re.search(r"%(?![0-9A-Fa-f]{2})", text)
        or not _HOSTNAME.match(url.hostname.strip("[]"))
        and not _is_ip(url.hostname, 6)
    ):
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a registry mirror: give an http:// or https:// URL such as "
            "https://mirror.example.com or http://10.0.0.5:5000, without query or fragment"
        )
    if url.username or url.password:
        # Not quoted: the value holds a password.
        raise argparse.ArgumentTypeError(
            f"the registry mirror URL for {url.hostname} holds a user name or password, which "
            "dockerd refuses there: give the URL without them and log in with docker login"
        )
    return text


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def _insecure_registry(text: str) -> str:
    """--docker-in-docker-insecure-registry: host[:port] or a CIDR, as dockerd accepts them."""
    problem = f"'{text}' is not an insecure registry"
    if "://" in text:
        raise argparse.ArgumentTypeError(
            f"{problem}: leave out the scheme ({text.split('://')[0]}://); give host[:port], such "
            "as registry.local:5000, or a network in CIDR form, such as 10.0.0.0/8"
        )
    if "/" in text:
        try:
            ipaddress.ip_network(text, strict=False)
            return text
        except ValueError:
            pass
    else:
        host, port = text, ""
        port = None
        if text.startswith("["):  # [IPv6]:port
            host, bracket, rest = text[1:].partition("]")
            if rest.startswith(":"):
                port = rest[1:]
            valid_host = bool(bracket) and rest in ("", f":{port}") and _is_ip(host, version=6)
        else:
            if text.count(":") == 1:
                host, port = text.split(":")
            valid_host = _is_ip(host, version=4) or bool(_HOSTNAME.match(host))
        if valid_host and (port is None or 1 <= _whole_number(port) <= 65535):
            return text
    raise argparse.ArgumentTypeError(
        f"{problem}: give host[:port], such as registry.local:5000 or 10.0.0.5:5000, or a "
        "network in CIDR form, such as 10.0.0.0/8"
    )


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _address_pool(text: str) -> dict:
    """--docker-in-docker-address-pool: CIDR/SIZE, as daemon.json's default-address-pools."""
    base, _, size = text.rpartition("/")
    try:
        network = ipaddress.ip_network(base)
    except ValueError:
        network = None
    prefix = _whole_number(size)
    if network is None or not network.prefixlen <= prefix <= network.max_prefixlen:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not an address pool: give a network and the size of the networks to "
            "cut from it, CIDR/SIZE, such as 10.201.0.0/16/24 (256 networks of /24); the "
            "network must be written from its first address and SIZE must be at least its "
            "prefix length"
        )
    # A subnet must hold a gateway and a container, and dockerd enumerates every subnet of a
    # pool: a pool of 2**56 of them makes it panic at start (makeslice: cap out of range).
    largest = network.max_prefixlen - 2
    if prefix > largest or prefix - network.prefixlen > MAX_POOL_BITS:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a usable address pool: SIZE must be at most /{largest} (room for "
            f"a gateway and containers) and cut at most {2**MAX_POOL_BITS} networks from the "
            "pool (SIZE minus the pool's prefix length at most "
            f"{MAX_POOL_BITS}), such as 10.201.0.0/16/24"
        )
    if (
        network.is_loopback
        or network.is_multicast
        or network.is_link_local
        or network.is_unspecified
        or network.is_reserved
        or network.prefixlen == 0
    ):
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a usable address pool: {network} is loopback, multicast, "
            "link-local or reserved address space; take one from a private range, such as "
            "10.201.0.0/16/24 or 172.30.0.0/16/24"
        )
    return {"base": str(network), "size": prefix}


def _docker_version(text: str) -> str:
    """--docker-in-docker-version: 27.3.1, or 27.3 / 27 for the newest of that series."""
    if not re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,4}){0,2}", text):
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a Docker version: give one such as 27.3.1, or 27.3 or 27 for the "
            "newest release of that series"
        )
    return text


def _volume_name(text: str) -> str:
    """--docker-in-docker-volume: a name the engine accepts for a volume."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{1,254}", text):
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a volume name: give a name of 2 to 255 letters, digits, '_', "
            "'.' or '-', starting with a letter or digit, such as dind-store; the engine "
            "creates the volume when it does not exist yet"
        )
    return text


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
            default=defaults.get("docker_in_docker_packages"),
            help="where Docker is installed from: Docker's apt repository (docker-ce, the "
            "default) or the base distribution's own packages (distro)%(default).0s",
        )
        parser.add_argument(
            "--docker-in-docker-timeout",
            type=_timeout,
            metavar="SECONDS",
            default=defaults.get("docker_in_docker_timeout"),
            help="how long the inner daemon may take until its API answers; a daemon that "
            f"takes longer counts as failed (default: {DEFAULT_TIMEOUT})%(default).0s",
        )
        parser.add_argument(
            "--docker-in-docker-wait",
            action="store_true",
            default=defaults.get("docker_in_docker_wait"),
            help="start the command only once the inner daemon's API answers, also without a "
            "terminal; otherwise a command run without one starts at once, its docker calls "
            "wait for the daemon, and a daemon that fails stops it%(default).0s",
        )
        parser.add_argument(
            "--docker-in-docker-storage-driver",
            choices=STORAGE_DRIVERS,
            metavar="NAME",
            default=defaults.get("docker_in_docker_storage_driver"),
            help="the inner daemon's storage driver, one of: %(choices)s (default: overlay2, "
            "falling back with a warning to one that works where overlay2 cannot)"
            "%(default).0s",
        )
        parser.add_argument(
            "--docker-in-docker-daemon-config",
            metavar="FILE",
            default=defaults.get("docker_in_docker_daemon_config"),
            help="a JSON file of settings for the inner daemon's daemon.json",
        )
        parser.add_argument(
            "--docker-in-docker-registry-mirror",
            type=_registry_mirror,
            action="append",
            metavar="URL",
            default=defaults.get("docker_in_docker_registry_mirror"),
            help="a registry mirror for the inner daemon's pulls from Docker Hub (repeatable)",
        )
        parser.add_argument(
            "--docker-in-docker-insecure-registry",
            type=_insecure_registry,
            action="append",
            metavar="HOST",
            default=defaults.get("docker_in_docker_insecure_registry"),
            help="a registry, host[:port] or CIDR, the inner daemon reaches over plain HTTP or "
            "without checking its certificate (repeatable)",
        )
        parser.add_argument(
            "--docker-in-docker-mtu",
            type=_mtu,
            metavar="N|auto",
            default=defaults.get("docker_in_docker_mtu"),
            help="the MTU of the inner daemon's networks (default: auto, the container's eth0)"
            "%(default).0s",
        )
        parser.add_argument(
            "--docker-in-docker-address-pool",
            type=_address_pool,
            action="append",
            metavar="CIDR/SIZE",
            default=defaults.get("docker_in_docker_address_pool"),
            help="where the inner daemon takes its networks' subnets from, such as "
            "10.201.0.0/16/24 (repeatable)",
        )
        parser.add_argument(
            "--docker-in-docker-version",
            type=_docker_version,
            metavar="VERSION",
            default=defaults.get("docker_in_docker_version"),
            help="the Docker release to install in docker-ce packages mode, such as 27.3.1 or 27",
        )
        parser.add_argument(
            "--docker-in-docker-volume",
            type=_volume_name,
            metavar="NAME",
            default=defaults.get("docker_in_docker_volume"),
            help="keep the inner daemon's images, containers and volumes in this named volume, "
            "which outlives the container (one container at a time may use it)",
        )
        parser.add_argument(
            "--docker-in-docker-load",
            nargs="+",
            action="extend",
            metavar="IMAGE",
            default=defaults.get("docker_in_docker_load"),
            help="host images to copy into the inner daemon when it starts; end the list with "
            "-- before rocker's image",
        )

    @classmethod
    def check_args_for_activation(cls, cli_args):
        # Also active when only one of our options is given, so that validate_environment can
        # say that the flag is missing rather than rocker silently building without it.
        return bool(cli_args.get(cls.name)) or bool(_options_without_flag(cli_args))

    def validate_environment(self, cliargs, parser):
        """Refuse, before anything is built, bad values and what would break the inner
        daemon's isolation."""
        orphans = _options_without_flag(cliargs)
        if orphans:
            parser.error(
                f"{', '.join(orphans)} given without --docker-in-docker, which it configures: "
                "add --docker-in-docker, or drop the option"
            )
        image = cliargs.get("image") or ""
        if image.startswith("-"):
            # After a --, argparse takes every word for the image and the command.
            parser.error(
                f"rocker's image is {image!r}: an option came after a --. Give options first, "
                "and a single -- just before the image, to end a list such as --volume or "
                "--docker-in-docker-load: rocker --volume A:B --docker-in-docker-load IMAGE -- "
                "BASE_IMAGE COMMAND"
            )
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
                    "add --docker-in-docker-load IMAGE --"
                )
        if cliargs.get("nvidia"):
            _say(
                "--nvidia gives the GPU to this container, not to the inner containers: the "
                "NVIDIA container runtime is not installed for the inner daemon"
            )
        if cliargs.get("docker_in_docker_version") and (
            cliargs.get("docker_in_docker_packages") == "distro"
        ):
            parser.error(
                f"--docker-in-docker-version {cliargs['docker_in_docker_version']} needs "
                "--docker-in-docker-packages docker-ce: it picks a release from Docker's own apt "
                "repository, while distro mode installs the one version the base distribution "
                "ships. Drop the version, or use docker-ce packages mode"
            )
        try:
            daemon_settings(cliargs)
        except ValueError as error:
            parser.error(str(error))
        missing = [
            image
            for image in cliargs.get("docker_in_docker_load") or []
            if not _host_has_image(image)
        ]
        if missing:
            parser.error(
                "--docker-in-docker-load: the host's engine has no image "
                f"{', '.join(repr(image) for image in missing)}. docker images lists the "
                "images it has (names are lowercase); pull or build the image on the host "
                "first, and end the list of images with -- before rocker's image"
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
        group_user = _rocker_user(cliargs) or restore_user
        packages_mode = cliargs.get("docker_in_docker_packages") or "docker-ce"
        install = []
        if cliargs.get("docker_in_docker_version"):
            install += ["--version", cliargs["docker_in_docker_version"]]
        # Only a driver that needs a program of its own changes the install step; any other
        # keeps its cached layer, which takes a minute to build.
        if daemon_settings(cliargs).get("storage-driver") == "fuse-overlayfs":
            install += ["--storage-driver", "fuse-overlayfs"]
        return {
            "packages_mode": packages_mode,
            "install_args": shlex.join([*install, packages_mode]),
            "inner_config": INNER_CONFIG,
            "docker_group_user": shlex.quote(group_user) if group_user else "",
            "restore_user": base.get("User") if restore_user else "",
            "inner_socket": INNER_SOCKET,
            "entrypoint": json.dumps(entrypoint),
            "cmd": json.dumps(cmd) if cmd else "",
        }

    def get_files(self, cliargs):
        files = super().get_files(cliargs)
        files[CONFIG_FILE] = json.dumps(daemon_settings(cliargs), indent=2, sort_keys=True) + "\n"
        return files

    def precondition_environment(self, cliargs):
        """Save the images of --docker-in-docker-load into a folder that get_docker_args mounts.
        rocker calls this right before `docker run`, after the build, and also in dry-run."""
        images = cliargs.get("docker_in_docker_load") or []
        if not cliargs.get(self.name) or not images:
            return
        folder = tempfile.mkdtemp(prefix="deps-rocker-load-")
        client = get_docker_client()
        for number, image in enumerate(images):
            archive = os.path.join(folder, f"{number:03d}.tar")
            try:
                with open(archive, "wb") as out:
                    for chunk in client.get_image(image):
                        out.write(chunk)
            except (docker.errors.DockerException, OSError) as error:
                shutil.rmtree(folder, ignore_errors=True)
                _say(f"ERROR: could not save host image {image} for the inner daemon: {error}")
                # rocker stops the run, with its own line, on this one exception type only.
                raise subprocess.CalledProcessError(1, ["docker", "save", image]) from error
        size = sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))
        _say(f"saved {len(images)} host image(s) for the inner daemon ({size / 1e6:.0f} MB)")
        self._load_folder = folder

        # The folder must outlive the container's start. Without --detach, --nocleanup or
        # dry-run, the container is gone when rocker exits; otherwise it may still need it.
        if cliargs.get("mode") == OPERATIONS_DRY_RUN:
            _say(f"the saved images stay in {folder}: remove it after running the command")
        elif cliargs.get("detach") or cliargs.get("nocleanup"):
            _say(
                f"the saved images stay in {folder}, which the container mounts: remove it "
                "once the container is removed"
            )
        else:
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            # atexit runs on a normal exit and on SIGINT (KeyboardInterrupt), not on SIGTERM,
            # the signal a CI system cancels a job with: turn that into an exit as well.
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))

    def get_docker_args(self, cliargs):
        timeout = cliargs.get("docker_in_docker_timeout") or DEFAULT_TIMEOUT
        volume = cliargs.get("docker_in_docker_volume")
        args = [
            "--privileged",
            "--volume",
            f"{volume}:/var/lib/docker" if volume else "/var/lib/docker",
            "--env",
            f"DEPS_ROCKER_DIND_TIMEOUT={timeout}",
        ]
        if volume:
            args += ["--env", f"DEPS_ROCKER_DIND_VOLUME={volume}"]
        if cliargs.get("docker_in_docker_wait"):
            args += ["--env", "DEPS_ROCKER_DIND_WAIT=1"]
        load_folder = getattr(self, "_load_folder", None)
        if load_folder:
            args += ["--volume", f"{load_folder}:{LOAD_FOLDER}:ro"]
        # rocker glues every extension's arguments into one string: start with a space.
        return " " + shlex.join(args)

    def _base_image_config(self, cliargs) -> dict:
        """The base image's Config (Entrypoint, Cmd, User, ...), from the host's engine; asked
        once, though both snippets need it."""
        image = cliargs.get("base_image") or cliargs.get("image")
        if not image:
            return {}
        cache = self.__dict__.setdefault("_base_configs", {})
        if image not in cache:
            cache[image] = get_docker_client().inspect_image(image).get("Config") or {}
        return cache[image]


# (option's argparse destination, daemon.json key) of the options that add to a list.
_LIST_OPTIONS = (
    ("docker_in_docker_registry_mirror", "registry-mirrors"),
    ("docker_in_docker_insecure_registry", "insecure-registries"),
    ("docker_in_docker_address_pool", "default-address-pools"),
)
# ... and of those that set one value.
_VALUE_OPTIONS = (
    ("docker_in_docker_storage_driver", "storage-driver"),
    ("docker_in_docker_mtu", "mtu"),
)


def daemon_settings(cliargs) -> dict:
    """rocker's part of the inner daemon's daemon.json: the object in
    --docker-in-docker-daemon-config's file, with the options added. The list options add to
    the file's lists; an option that sets a value the file sets otherwise is a ValueError, as
    is a file that cannot be read, is not JSON or not an object. Each message names the file,
    and for JSON errors the line and column."""
    path = cliargs.get("docker_in_docker_daemon_config")
    settings = _daemon_config(cliargs) if path is not None else {}
    where = f"--docker-in-docker-daemon-config {shlex.quote(path or '')}"

    for dest, key in _LIST_OPTIONS:
        extra = cliargs.get(dest) or []
        if not extra:
            continue
        present = settings.get(key, [])
        if not isinstance(present, list):
            raise ValueError(
                f'{where}: "{key}" is {_json_kind(present)}, so {_flag(dest)} cannot add to '
                "it; make it a list"
            )
        settings[key] = present + [item for item in extra if item not in present]

    for dest, key in _VALUE_OPTIONS:
        value = cliargs.get(dest)
        if value is None or value == "auto":
            continue
        if key in settings and settings[key] != value:
            raise ValueError(
                f'{_flag(dest)} {value} and {where}, which sets "{key}": '
                f"{json.dumps(settings[key])}, disagree: give it in one place"
            )
        settings[key] = value

    driver = settings.get("storage-driver")
    if driver is not None and driver not in STORAGE_DRIVERS:
        raise ValueError(
            f'{where}: "storage-driver": {json.dumps(driver)} is not a driver the inner daemon '
            f"can use; use one of {', '.join(STORAGE_DRIVERS)}"
        )
    return settings


# Keys the entrypoint sets for the inner daemon to work where it does: a file may not move them.
_OWNED_KEYS = ("data-root", "exec-root", "pidfile", "hosts", "containerd")


def _daemon_config(cliargs) -> dict:
    """The object in --docker-in-docker-daemon-config's file, read once per run and kept in
    cliargs: the file may be a pipe that reads only once, or change after it was checked."""
    path = cliargs["docker_in_docker_daemon_config"]
    read = cliargs.get("docker_in_docker_daemon_config_read")
    if not read or read[0] != path:
        read = cliargs["docker_in_docker_daemon_config_read"] = (path, _read_daemon_config(path))
    return copy.deepcopy(read[1])


def _read_daemon_config(path: str) -> dict:
    where = f"--docker-in-docker-daemon-config {shlex.quote(path)}"
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ValueError(f"{where}: cannot read it: {error.strerror}") from error
    if len(raw) > MAX_CONFIG_BYTES:
        raise ValueError(f"{where}: larger than {MAX_CONFIG_BYTES // 1024} KiB: no daemon.json")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{where}: not UTF-8 text ({error.reason})") from error
    try:
        settings = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{where}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from error
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{where}: not JSON dockerd can read: {error}") from error
    if not isinstance(settings, dict):
        raise ValueError(
            f"{where}: holds {_json_kind(settings)}; a daemon.json holds one JSON object, such "
            'as {"log-level": "warn"}'
        )
    _check_known_keys(settings, where)
    return settings


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is too large a number")
    return number


def _check_known_keys(settings: dict, where: str) -> None:
    """The keys the options also set get the options' checks, so that a bad value is refused
    here rather than by dockerd after the build; keys the entrypoint owns are refused."""
    for key in _OWNED_KEYS:
        if key in settings:
            raise ValueError(
                f'{where}: "{key}" is set by the entrypoint, for the inner daemon to work in '
                "the container (its store is the /var/lib/docker volume, its socket "
                f"{INNER_SOCKET}); leave it out"
            )

    def check(key, convert, value):
        try:
            convert(value)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as error:
            raise ValueError(f'{where}: "{key}": {error}') from error

    if "mtu" in settings:
        mtu = settings["mtu"]
        if isinstance(mtu, bool) or not isinstance(mtu, int):
            raise ValueError(f'{where}: "mtu" is {_json_kind(mtu)}; give a whole number')
        check("mtu", _mtu, str(mtu))
    checks = (
        ("registry-mirrors", _registry_mirror, str),
        ("insecure-registries", _insecure_registry, str),
        ("default-address-pools", _address_pool_object, dict),
    )
    for key, convert, kind in checks:
        if key not in settings:
            continue
        items = settings[key]
        if not isinstance(items, list) or not all(isinstance(item, kind) for item in items):
            raise ValueError(
                f'{where}: "{key}" is {_json_kind(items)}; give a list of '
                f"{'objects' if kind is dict else 'strings'}"
            )
        for item in items:
            check(key, convert, item)


def _address_pool_object(pool: dict) -> dict:
    return _address_pool(f"{pool.get('base')}/{pool.get('size')}")


def _json_kind(value) -> str:
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    kinds = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return kinds.get(type(value), f"a number ({json.dumps(value)})")


def _flag(dest: str) -> str:
    """The option of an argparse destination: docker_in_docker_mtu -> --docker-in-docker-mtu."""
    return "--" + dest.replace("_", "-")


def _host_has_image(image: str) -> bool:
    """False for an image the host's engine lacks, and for a name that is no image reference
    at all (the engine answers those with 400, or the SDK refuses an empty one)."""
    if not image.strip():
        return False
    try:
        get_docker_client().inspect_image(image)
    except (docker.errors.NotFound, docker.errors.NullResource):
        return False
    except docker.errors.APIError as error:
        if error.status_code == 400:
            return False
        raise
    return True


def _say(message: str) -> None:
    """One line for the user, on stderr, with the prefix every line of the extension has."""
    print(f"docker-in-docker: {message}", file=sys.stderr, flush=True)


def _rocker_user(cliargs) -> str:
    """The name rocker's --user extension gives the user in the image, or '' without it."""
    if not cliargs.get("user"):
        return ""
    return cliargs.get("user_override_name") or get_user_name()


# Our options, all with None as argparse's default (the real defaults are applied where they
# are used), so that one given without the flag is a mistake we can see.
_OPTIONS_WITH_NO_DEFAULT = (
    "docker_in_docker_packages",
    "docker_in_docker_timeout",
    "docker_in_docker_wait",
    "docker_in_docker_storage_driver",
    "docker_in_docker_daemon_config",
    "docker_in_docker_registry_mirror",
    "docker_in_docker_insecure_registry",
    "docker_in_docker_mtu",
    "docker_in_docker_address_pool",
    "docker_in_docker_version",
    "docker_in_docker_volume",
    "docker_in_docker_load",
)


def _options_without_flag(cliargs) -> list:
    if cliargs.get(DockerInDocker.name):
        return []
    return [_flag(dest) for dest in _OPTIONS_WITH_NO_DEFAULT if cliargs.get(dest) is not None]


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
