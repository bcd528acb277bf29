#!/usr/bin/env python3
"""Measure what rocker's --docker-in-docker costs its user, and print the results as Markdown.

    python benchmarks/run.py [--runs N] [--packages MODE] [--base-image IMAGE] [--keep-images]

It needs what the integration tests need (scripts/provision-test-host.sh): a Docker engine that
runs privileged containers, the base image, and a static busybox on the host. Each measure is
taken against its own reference in the same run, the two sides alternating run by run, so that
background load on a shared engine falls on both:

1. start: how long after `docker run` the command starts, in the image rocker builds with
   --docker-in-docker and in the one it builds without; when the command's first docker call
   returns (the command starts before the inner daemon answers, and that call waits for it);
   the same start when the command waits for the daemon (as on a terminal); the inner
   daemon's ready time as the entrypoint counts it; how long the container takes to exit once
   the command is done.
2. warm run: `rocker ... IMAGE true` with every layer cached, with and without the extension.
3. size: the bytes the extension's layers add to the image, per packages mode, and how much of
   them is not files of the installed packages (apt lists, caches, logs; docs shown apart).
4. stop: `docker stop` of a container with an inner container running, one that handles
   SIGTERM and one that ignores it.
5. inner overhead: `docker run --rm` of a small image and a small `docker build`, against the
   inner daemon and against the host's engine, from the same docker CLI in the same image.

It measures the deps_rocker that rocker loads from this interpreter's environment (the table
names its commit), through the `rocker` beside this interpreter. The containers get exactly
the `docker run` options rocker would give them (read from `rocker --mode dry-run`) and are
started through the docker SDK, which gives the engine's own start and finish times.

Progress goes to stderr, the table to stdout; the exit status is 1 when a measure failed.
Everything it creates is named deps-rocker-bench-* and removed at the end; --keep-images keeps
the images rocker built, so that a rerun skips the build.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import datetime
import importlib.util
import io
import json
import logging
import math
import os
import platform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import docker

HERE = Path(__file__).resolve().parent
PREFIX = "deps-rocker-bench"
BASE_IMAGE = f"{PREFIX}-base:latest"
PLAIN_IMAGE = f"{PREFIX}-plain:latest"
PACKAGES_MODES = ("distro", "docker-ce")
DOCKER_CE_HOST = "download.docker.com"
READY = re.compile(r"docker-in-docker: inner daemon ready in (\d+\.\d+)s")
# The inner containers of the stop measure. A shell that traps SIGTERM exits at once (it says
# when the trap is set: a SIGTERM before that would be dropped, as it is PID 1); busybox sleep
# as PID 1 has no handler, so the kernel drops SIGTERM and only SIGKILL ends it.
TRAPPED = "trap set"
HANDLES_TERM = ["sh", "-c", f"trap 'exit 0' TERM; echo {TRAPPED}; sleep 1000 & wait"]
IGNORES_TERM = ["sleep", "1000"]
# A sample set whose slowest run took this many times its median, and a tenth of a second
# more, is flagged as noisy.
NOISY = 1.5
MB = 1e6

log = logging.getLogger("bench")


class BenchError(Exception):
    """A measure could not be taken; the message says why."""


# ---------------------------------------------------------------------------------------------
# Numbers and their formatting


@dataclass
class Samples:
    """Timings of one thing, in seconds."""

    values: list = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def noisy(self) -> bool:
        slowest = max(self.values)
        return slowest > NOISY * self.median and slowest > self.median + 0.1

    def __str__(self) -> str:
        if not self.values:
            return "n/a"
        low, high = min(self.values), max(self.values)
        text = f"{_2f(self.median)} s ({_2f(low)}–{_2f(high)})"
        return text + " †" if self.noisy else text


def _2f(value: float, sign: str = "") -> str:
    """Two decimals, and never "-0.00" (a process may start a little before the engine notes
    that it did)."""
    return f"{round(value, 2) + 0.0:{sign}.2f}"


def _added(reference: Samples, ours: Samples) -> str:
    return f"{_2f(ours.median - reference.median, '+')} s"


def _ratio(reference: Samples, ours: Samples) -> float:
    return ours.median / reference.median if reference.median > 0 else math.inf


def _mb(size: float) -> str:
    return f"{size / MB:.1f} MB" if size >= 0.1 * MB else f"{size / 1e3:.1f} kB"


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


@dataclass
class Row:
    measure: str
    reference: str = ""
    ours: str = ""
    cost: str = ""
    target: str = ""
    met: str = ""


# ---------------------------------------------------------------------------------------------
# Running containers the way rocker would


@dataclass
class RunOptions:
    """The image and the `docker run` options of one rocker command, for the docker SDK."""

    image: str
    privileged: bool = False
    volumes: list = field(default_factory=list)  # anonymous volumes: container paths
    binds: list = field(default_factory=list)  # HOST:CONTAINER[:MODE]
    env: list = field(default_factory=list)

    @classmethod
    def parse(cls, command: str) -> RunOptions:
        """Read `docker run [OPTIONS] IMAGE [COMMAND]` as rocker's dry-run prints it."""
        words = shlex.split(command)
        if words[:2] != ["docker", "run"]:
            raise BenchError(f"not a docker run command: {command!r}")
        options = {"privileged": False, "volumes": [], "binds": [], "env": []}
        rest = iter(words[2:])
        for word in rest:
            name, _, value = word.partition("=")
            if name in ("--rm", "-i", "-t", "-it", "--interactive", "--tty"):
                continue  # the SDK runs detached; removal is timed on its own
            if name == "--privileged":
                options["privileged"] = True
            elif name in ("-v", "--volume"):
                spec = value or next(rest)
                options["binds" if ":" in spec else "volumes"].append(spec)
            elif name in ("-e", "--env"):
                options["env"].append(value or next(rest))
            elif word.startswith("-"):
                raise BenchError(
                    f"the benchmark cannot copy the docker run option {word!r} from rocker's "
                    f"command: {command}"
                )
            else:
                return cls(image=word, **options)
        raise BenchError(f"no image in rocker's command: {command!r}")

    def create(self, client, command, *, name, labels, binds=(), entrypoint=None) -> str:
        host_config = client.api.create_host_config(
            privileged=self.privileged, binds=[*self.binds, *binds]
        )
        created = client.api.create_container(
            self.image,
            command,
            name=name,
            labels=labels,
            volumes=self.volumes or None,
            environment=self.env,
            entrypoint=entrypoint,
            host_config=host_config,
        )
        return created["Id"]


@dataclass
class Timing:
    """One container's run: host clock, engine clock and the command's own clock agree (all
    are the same machine's realtime clock)."""

    called: float  # before the create call
    started: float  # the engine's State.StartedAt
    command: float  # what the command printed: the time it started
    answered: float | None  # what it printed next, if anything: when `docker version` returned
    finished: float  # the engine's State.FinishedAt
    exited: float  # when the wait call returned
    removal: float  # seconds to remove the container and its volumes
    ready: float | None  # the entrypoint's own count, if it printed one


def _engine_time(text: str) -> float:
    """Seconds since the epoch from an engine timestamp (RFC 3339 in UTC, nanoseconds)."""
    if not text.endswith("Z"):
        raise BenchError(f"unexpected engine timestamp {text!r}")
    whole, _, fraction = text[:-1].partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{fraction}0")


# ---------------------------------------------------------------------------------------------
# The session: engine, names, scratch files, cleanup


class Bench:
    def __init__(self, args: argparse.Namespace, argv: list):
        self.args = args
        self.argv = argv  # as given, for the report
        self.run_id = uuid.uuid4().hex[:8]
        self.labels = {PREFIX: self.run_id}
        self.client = docker.from_env(timeout=600)
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-"))
        self.context = self.scratch / "context"
        self.dind_image = f"{PREFIX}-dind:{args.packages}"
        self.images = [BASE_IMAGE, PLAIN_IMAGE]  # each built on the one before
        self.count = 0
        self.inner_daemon = ""  # version, storage driver and builder, once measured
        # What else ran, sampled at every run: the engine's other containers, and the highest
        # 1-minute load average during each measure.
        self.measure = "setup"
        self.others = [0]
        self.loads = {}

    def name(self, purpose: str) -> str:
        self.count += 1
        return f"{PREFIX}-{self.run_id}-{purpose}-{self.count}"

    def progress(self, message: str, *args) -> None:
        log.info(message, *args)
        self.note_background()

    def note_background(self) -> None:
        """Remember the load and the engine's other containers: they explain a high spread."""
        load = os.getloadavg()[0]
        self.loads[self.measure] = max(load, self.loads.get(self.measure, 0.0))
        running = self.client.containers.list()
        self.others.append(sum(not c.name.startswith(PREFIX) for c in running))

    def prepare(self) -> None:
        """The build context for inner images, and the base image rocker builds on.

        rocker removes the image of a run without --image-name by its id, and a tag goes with
        it. Another rocker run on the same engine, from the same base with the same extensions,
        builds an image of the same id as ours, so the test suite running beside the benchmark
        would delete our images. The base is therefore the given image plus a label: the same
        files, an id of its own.
        """
        try:
            self.client.images.get(self.args.base_image)
        except docker.errors.ImageNotFound:
            raise BenchError(
                f"base image {self.args.base_image} is missing; run scripts/provision-test-host.sh"
            ) from None
        dockerfile = f"FROM {self.args.base_image}\nLABEL {PREFIX}=base\n"
        self.client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=BASE_IMAGE, rm=True)
        shutil.copytree(HERE / "context", self.context)
        shutil.copy(_static_busybox(), self.context / "busybox")
        self.context.chmod(0o755)

    def cleanup(self) -> None:
        for container in self.client.containers.list(all=True, filters={"label": PREFIX}):
            if container.labels.get(PREFIX) == self.run_id:
                container.remove(force=True, v=True)
        tags = [
            tag
            for image in self.client.images.list()
            for tag in image.tags
            if tag.startswith(f"{PREFIX}-{self.run_id}")
        ]
        if not self.args.keep_images:
            tags += reversed(self.images)
        for tag in tags:
            try:
                self.client.images.remove(tag)
            except docker.errors.ImageNotFound:
                pass
            except docker.errors.APIError as error:
                log.warning("could not remove image %s: %s", tag, error)
        self._prune_build_cache()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _prune_build_cache(self) -> None:
        """Remove the host engine's build cache of build.Dockerfile's steps, found by name. A
        record goes only once the records built on it are gone: hence the passes."""
        for _ in range(5):
            records = [
                record
                for record in self.client.df().get("BuildCache") or []
                if PREFIX in (record.get("Description") or "") and not record.get("InUse")
            ]
            if not records:
                return
            for record in records:
                self.client.api.prune_builds(filters={"id": [record["ID"]]}, all=True)


def _static_busybox() -> Path:
    """A statically linked busybox for inner images FROM scratch (there is no registry)."""
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.is_file() and b"ld-linux" not in path.read_bytes()[:4096]:
            return path
    raise BenchError("no static busybox on the host; install busybox-static")


def _rocker_executable() -> str:
    beside = Path(sys.executable).with_name("rocker")
    return str(beside) if beside.exists() else "rocker"


@dataclass
class RockerRun:
    seconds: float
    until_docker_run: float  # rocker's own part: parse, extensions, the (cached) build
    output: str


def rocker(*args: str, mode: str = "non-interactive", timeout: int = 1800) -> RockerRun:
    """Run the real rocker CLI; stdout and stderr together, each line timed as it arrives."""
    command = [_rocker_executable(), "--mode", mode, *args]
    environment = dict(os.environ, PYTHONUNBUFFERED="1")  # else the line times mean nothing
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )
    lines, until_docker_run = [], None
    for line in process.stdout:
        lines.append(line)
        if until_docker_run is None and line.startswith(("Executing command:", "Run this")):
            until_docker_run = time.monotonic() - started
    try:
        status = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise BenchError(f"{shlex.join(command)} took over {timeout}s") from None
    seconds = time.monotonic() - started
    output = "".join(lines)
    if status != 0:
        raise BenchError(f"{shlex.join(command)} exited {status}:\n{output[-3000:]}")
    return RockerRun(seconds, until_docker_run or seconds, output)


def rocker_run_options(bench: Bench, extension_args: list) -> RunOptions:
    """Build the image (the build is cached when nothing changed) and read rocker's command."""
    run = rocker(*extension_args, BASE_IMAGE, "true", mode="dry-run")
    for line in run.output.splitlines():
        if line.startswith("docker run "):
            return RunOptions.parse(line)
    raise BenchError(f"rocker's dry-run printed no docker run command:\n{run.output[-3000:]}")


def dind_args(image_name: str, mode: str) -> list:
    return [
        "--docker-in-docker",
        "--docker-in-docker-packages",
        mode,
        "--image-name",
        image_name,
    ]


def timed_run(bench: Bench, options: RunOptions, command: list) -> Timing:
    """Run a container to its end, like `docker run --rm`, and time its phases."""
    api = bench.client.api
    called = time.time()
    container = options.create(bench.client, command, name=bench.name("start"), labels=bench.labels)
    try:
        api.start(container)
        status = api.wait(container, timeout=300)["StatusCode"]
        exited = time.time()
        state = api.inspect_container(container)["State"]
        stdout = api.logs(container, stdout=True, stderr=False).decode(errors="replace")
        stderr = api.logs(container, stdout=False, stderr=True).decode(errors="replace")
    finally:
        removing = time.monotonic()
        api.remove_container(container, v=True, force=True)
        removal = time.monotonic() - removing
    if status != 0:
        raise BenchError(f"{shlex.join(command)} in {options.image} exited {status}:\n{stderr}")
    ready = READY.search(stderr)
    printed = stdout.split()
    return Timing(
        called=called,
        started=_engine_time(state["StartedAt"]),
        command=float(printed[0]),
        answered=float(printed[1]) if len(printed) > 1 else None,
        finished=_engine_time(state["FinishedAt"]),
        exited=exited,
        removal=removal,
        ready=float(ready.group(1)) if ready else None,
    )


def start_detached(bench: Bench, options: RunOptions, command: list, purpose: str) -> str:
    """Start a container in the background with the benchmark's context at /bench."""
    container = options.create(
        bench.client,
        command,
        name=bench.name(purpose),
        labels=bench.labels,
        binds=[f"{bench.context}:/bench:ro"],
    )
    bench.client.api.start(container)
    return container


def wait_for_log(bench: Bench, container: str, pattern: re.Pattern, timeout: float = 120) -> None:
    """Wait until the container's output matches: the inner daemon is ready, a trap is set."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pattern.search(bench.client.api.logs(container).decode(errors="replace")):
            return
        if bench.client.api.inspect_container(container)["State"]["Status"] != "running":
            break
        time.sleep(0.05)
    logs = bench.client.api.logs(container).decode(errors="replace")
    raise BenchError(f"waited in vain for {pattern.pattern!r}:\n{logs[-3000:]}")


def exec_in(bench: Bench, container: str, command: list) -> str:
    """Run a command in a running container; its stdout (stderr only goes into errors)."""
    api = bench.client.api
    run = api.exec_create(container, command)
    stdout, stderr = api.exec_start(run["Id"], demux=True)
    status = api.exec_inspect(run["Id"])["ExitCode"]
    stdout = (stdout or b"").decode(errors="replace")
    if status != 0:
        stderr = (stderr or b"").decode(errors="replace")
        raise BenchError(
            f"{shlex.join(command)} exited {status} inside:\n{(stdout + stderr)[-3000:]}"
        )
    return stdout


# ---------------------------------------------------------------------------------------------
# 1. Start: until the command starts, the inner daemon's ready time, the exit afterwards


def measure_start(bench: Bench, plain: RunOptions, dind: RunOptions) -> list:
    # The command prints the time it starts (the realtime clock is the host's in a container),
    # and with Docker inside, the time its first docker call returns.
    commands = {
        "plain": ["sh", "-c", "date +%s.%N"],
        "plain+options": ["sh", "-c", "date +%s.%N"],
        "dind": ["sh", "-c", "date +%s.%N; docker version >/dev/null && date +%s.%N"],
    }
    commands["dind+wait"] = commands["dind"]
    # The plain image with the extension's run options: how much of the cost they alone make.
    plain_privileged = RunOptions(plain.image, dind.privileged, dind.volumes, dind.binds, dind.env)
    # The command waiting for the daemon, as it does on a terminal, or with
    # --docker-in-docker-wait (which is how it is asked for here: the SDK gives no terminal).
    waiting = RunOptions(
        dind.image,
        dind.privileged,
        dind.volumes,
        dind.binds,
        [*dind.env, "DEPS_ROCKER_DIND_WAIT=1"],
    )
    variants = {
        "plain": plain,
        "plain+options": plain_privileged,
        "dind": dind,
        "dind+wait": waiting,
    }
    for key, options in variants.items():
        timed_run(bench, options, commands[key])  # a first, untimed run of each
    runs = {key: [] for key in variants}
    for index in range(bench.args.runs):
        bench.progress("start: run %d of %d", index + 1, bench.args.runs)
        for key, options in variants.items():
            runs[key].append(timed_run(bench, options, commands[key]))
    if any(run.answered is None for run in runs["dind"] + runs["dind+wait"]):
        raise BenchError("`docker version` failed in a --docker-in-docker container")

    def samples(key, measure) -> Samples:
        return Samples([measure(run) for run in runs[key]])

    to_command = {key: samples(key, lambda r: r.command - r.called) for key in runs}
    start_to_command = {key: samples(key, lambda r: r.command - r.started) for key in runs}
    # From the last time the command printed: with Docker inside, after its docker call.
    after_command = {
        key: samples(key, lambda r: r.finished - (r.answered or r.command)) for key in runs
    }
    removal = {key: samples(key, lambda r: r.removal) for key in runs}
    whole = {key: samples(key, lambda r: r.exited - r.called + r.removal) for key in runs}
    ready = Samples([r.ready for r in runs["dind"] if r.ready is not None])
    to_answer = samples("dind", lambda r: r.answered - r.called)
    command_to_answer = samples("dind", lambda r: r.answered - r.command)

    added = to_command["dind"].median - to_command["plain"].median
    added_waiting = to_command["dind+wait"].median - to_command["plain"].median
    return [
        Row("Inner daemon ready, as the entrypoint counts it", "–", str(ready)),
        Row(
            "Container start → command starts",
            str(start_to_command["plain"]),
            str(start_to_command["dind"]),
            _added(start_to_command["plain"], start_to_command["dind"]),
        ),
        Row(
            "**`docker run` → command starts** (no terminal: the inner daemon answers later)",
            str(to_command["plain"]),
            str(to_command["dind"]),
            _added(to_command["plain"], to_command["dind"]),
            "≤ +0.50 s",
            _met(added <= 0.5),
        ),
        Row(
            "**`docker run` → command starts, once the inner daemon answers** (on a terminal, "
            "or `--docker-in-docker-wait`)",
            str(to_command["plain"]),
            str(to_command["dind+wait"]),
            _added(to_command["plain"], to_command["dind+wait"]),
            "≤ +0.50 s",
            _met(added_waiting <= 0.5),
        ),
        Row(
            "`docker run` → the command's first `docker version` returns",
            "–",
            str(to_answer),
            f"{_2f(command_to_answer.median, '+')} s after the command starts",
        ),
        Row(
            "… of which `--privileged` and the volume alone (plain image)",
            str(to_command["plain"]),
            str(to_command["plain+options"]),
            _added(to_command["plain"], to_command["plain+options"]),
        ),
        Row(
            "Command ends → container exits (inner daemon stops)",
            str(after_command["plain"]),
            str(after_command["dind"]),
            _added(after_command["plain"], after_command["dind"]),
        ),
        Row(
            "Removal with `-v` (the inner daemon's volume)",
            str(removal["plain"]),
            str(removal["dind"]),
            _added(removal["plain"], removal["dind"]),
        ),
        Row(
            "Whole `docker run --rm IMAGE date`",
            str(whole["plain"]),
            str(whole["dind"]),
            f"{_added(whole['plain'], whole['dind'])}, "
            f"{_ratio(whole['plain'], whole['dind']):.2f}×",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# 2. Warm run: rocker IMAGE true, everything cached, with and without the extension


def measure_warm_run(bench: Bench) -> list:
    base = BASE_IMAGE
    commands = {
        "plain": ["--image-name", PLAIN_IMAGE, base, "true"],
        "dind": [*dind_args(bench.dind_image, bench.args.packages), base, "true"],
    }
    for args in commands.values():
        rocker(*args)  # the run that builds, or finds everything cached
    wall = {key: Samples() for key in commands}
    own = {key: Samples() for key in commands}
    docker_run = {key: Samples() for key in commands}
    for index in range(bench.args.runs):
        bench.progress("warm run: run %d of %d", index + 1, bench.args.runs)
        for key, args in commands.items():
            run = rocker(*args)
            if "---> Running in" in run.output:
                raise BenchError(
                    "a warm rocker run rebuilt its image: did deps_rocker change meanwhile?\n"
                    + run.output[-3000:]
                )
            wall[key].add(run.seconds)
            own[key].add(run.until_docker_run)
            docker_run[key].add(run.seconds - run.until_docker_run)
    ratio = _ratio(wall["plain"], wall["dind"])
    return [
        Row(
            "**Warm `rocker … IMAGE true`**",
            str(wall["plain"]),
            str(wall["dind"]),
            f"{ratio:.2f}×",
            "≤ 1.15×",
            _met(ratio <= 1.15),
        ),
        Row(
            "… rocker until `docker run` (extensions, cached build)",
            str(own["plain"]),
            str(own["dind"]),
            _added(own["plain"], own["dind"]),
        ),
        Row(
            "… `docker run` itself",
            str(docker_run["plain"]),
            str(docker_run["dind"]),
            _added(docker_run["plain"], docker_run["dind"]),
        ),
    ]


# ---------------------------------------------------------------------------------------------
# 3. Size: the extension's layers, file by file

# Where a file in the extension's layers belongs, tested in this order.
LEFTOVERS = ("var/lib/apt/lists/", "var/cache/apt/", "var/log/")
DOCS = ("usr/share/doc/", "usr/share/man/", "usr/share/info/")
OWN_FILES = ("usr/local/lib/deps-rocker/", "etc/sudoers.d/deps-rocker-")
PACKAGE_STATE = ("var/lib/dpkg/", "var/cache/debconf/", "var/lib/apt/")
# Debian's merged /usr: a package's file list may name /bin/x for what the layer has as usr/bin/x.
MERGED = ("bin/", "sbin/", "lib/", "lib32/", "lib64/", "libx32/")


def _canonical(path: str) -> str:
    path = path[2:] if path.startswith("./") else path.lstrip("/")
    return f"usr/{path}" if path.startswith(MERGED) else path


KINDS = ("packages", "docs", "state", "own", "leftovers", "others")


@dataclass
class LayerReport:
    added: int  # image size minus the reference image's size
    files: dict  # kind -> [(path, size)], largest first
    copies: dict  # kind -> bytes of files that an earlier layer of ours already held
    new_packages: dict  # name -> installed size in bytes, from dpkg's status

    def bytes(self, kind: str) -> int:
        return sum(size for _, size in self.files[kind])

    def largest(self, kind: str, count: int) -> str:
        files = [(path, size) for path, size in self.files[kind] if size][:count]
        return ", ".join(f"/{path} ({_mb(size)})" for path, size in files)


def _dpkg_status(text: str) -> dict:
    sizes = {}
    for paragraph in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in paragraph.splitlines() if ": " in line[:60])
        if "Package" in fields and "installed" in fields.get("Status", ""):
            sizes[fields["Package"]] = int(fields.get("Installed-Size", "0")) * 1024
    return sizes


def analyse_layers(bench: Bench, image_name: str, reference_name: str) -> LayerReport:
    image = bench.client.images.get(image_name)
    reference = bench.client.images.get(reference_name)
    base_layers = reference.attrs["RootFS"]["Layers"]
    layers = image.attrs["RootFS"]["Layers"]
    if layers[: len(base_layers)] != base_layers:
        raise BenchError(f"{image_name} is not built on {reference_name}")

    owned, status_texts, files = set(), [], []
    archive = bench.scratch / "image.tar"
    with archive.open("wb") as out:
        for chunk in image.save(named=False):
            out.write(chunk)
    with tarfile.open(archive) as saved:
        manifest = json.load(saved.extractfile("manifest.json"))[0]
        for index, layer_path in enumerate(manifest["Layers"]):
            ours = index >= len(base_layers)
            with tarfile.open(fileobj=saved.extractfile(layer_path)) as layer:
                for member in layer:
                    path = _canonical(member.name)
                    if path.startswith("var/lib/dpkg/info/") and path.endswith(".list"):
                        names = layer.extractfile(member).read().decode(errors="replace")
                        owned.update(_canonical(name) for name in names.splitlines())
                    if path == "var/lib/dpkg/status":
                        text = layer.extractfile(member).read().decode(errors="replace")
                        status_texts.append((ours, text))
                    if ours and member.isfile() and not Path(path).name.startswith(".wh."):
                        files.append((path, member.size))
    archive.unlink()

    by_kind = {kind: [] for kind in KINDS}
    copies = dict.fromkeys(KINDS, 0)
    seen = set()
    for path, size in files:
        if path.startswith(LEFTOVERS):
            kind = "leftovers"
        elif path.startswith(DOCS):
            kind = "docs"
        elif path.startswith(OWN_FILES):
            kind = "own"
        elif path in owned:
            kind = "packages"
        elif path.startswith(PACKAGE_STATE):
            kind = "state"
        else:
            kind = "others"
        by_kind[kind].append((path, size))
        if path in seen:
            copies[kind] += size
        seen.add(path)

    before = _dpkg_status(next((text for ours, text in status_texts if not ours), ""))
    after = _dpkg_status(status_texts[-1][1]) if status_texts else {}
    return LayerReport(
        added=image.attrs["Size"] - reference.attrs["Size"],
        files={kind: sorted(items, key=lambda item: -item[1]) for kind, items in by_kind.items()},
        copies=copies,
        new_packages={name: size for name, size in after.items() if name not in before},
    )


def _docker_ce_unreachable() -> str:
    """Why Docker's apt repository cannot be used here, or '' when it answers."""
    try:
        with socket.create_connection((DOCKER_CE_HOST, 443), timeout=5):
            return ""
    except OSError as error:
        return f"{DOCKER_CE_HOST} does not answer from this machine ({error})"


def measure_size(bench: Bench) -> list:
    rows = []
    for mode in PACKAGES_MODES:
        image_name = f"{PREFIX}-dind:{mode}"
        why_not = _docker_ce_unreachable() if mode == "docker-ce" else ""
        if why_not:
            rows.append(
                Row(
                    f"Image size added, {mode} packages",
                    ours="not measurable here",
                    cost=f"{why_not}; the install needs Docker's apt repository",
                )
            )
            continue
        if mode != bench.args.packages:
            log.info("size: building the %s image", mode)
            rocker_run_options(bench, dind_args(image_name, mode))
            bench.images.append(image_name)
        log.info("size: reading the layers of %s", image_name)
        report = analyse_layers(bench, image_name, PLAIN_IMAGE)
        rows.extend(_size_rows(bench, mode, report))
    return rows


def _size_rows(bench: Bench, mode: str, report: LayerReport) -> list:
    plain = bench.client.images.get(PLAIN_IMAGE).attrs["Size"]
    biggest = sorted(report.new_packages.items(), key=lambda item: -item[1])[:3]
    packages = ", ".join(f"{name} {_mb(size)}" for name, size in biggest)
    leftovers = report.bytes("leftovers")
    others = report.bytes("others")
    own_copies = report.copies["own"]
    return [
        Row(
            f"**Image size added, {mode} packages**",
            f"{_mb(plain)} (rocker, no extension)",
            _mb(plain + report.added),
            f"+{_mb(report.added)}",
            "nothing but what packages install",
            _met(leftovers == 0 and others < 1 * MB),
        ),
        Row(
            f"… files of the {len(report.new_packages)} packages it installs, docs apart",
            cost=f"{_mb(report.bytes('packages'))} (largest: {packages})",
        ),
        Row("… their docs (/usr/share/doc, man, info)", cost=_mb(report.bytes("docs"))),
        Row(
            "… dpkg, debconf and apt state",
            cost=f"{_mb(report.bytes('state'))}, largest: {report.largest('state', 3)}",
        ),
        Row(
            "… the extension's scripts and sudo rule",
            cost=_mb(report.bytes("own"))
            + (f", {_mb(own_copies)} of it copies made by a later layer" if own_copies else ""),
        ),
        Row(
            "… apt lists, apt caches, /var/log",
            cost=_mb(leftovers) + (f": {report.largest('leftovers', 4)}" if leftovers else ""),
        ),
        Row(
            "… other files in no package's file list",
            cost=_mb(others) + (f", largest: {report.largest('others', 4)}" if others else ""),
        ),
    ]


# ---------------------------------------------------------------------------------------------
# 4. Stop: docker stop with an inner container running


def stop_once(bench: Bench, options: RunOptions, inner: list | None, *, dind: bool) -> tuple:
    """Seconds `docker stop` takes, and the container's exit status."""
    api = bench.client.api
    command = ["sleep", "infinity"] if dind else HANDLES_TERM
    container = start_detached(bench, options, command, "stop")
    try:
        wait_for_log(bench, container, READY if dind else re.compile(TRAPPED))
        if inner is not None:
            script = (
                "docker build -q -t probe /bench >/dev/null && "
                f"docker run -d --name inner probe {shlex.join(inner)} >/dev/null"
            )
            if inner == HANDLES_TERM:
                script += f" && until docker logs inner | grep -q '{TRAPPED}'; do sleep 0.05; done"
            exec_in(bench, container, ["sh", "-c", script])
        started = time.monotonic()
        api.stop(container, timeout=10)
        seconds = time.monotonic() - started
        status = api.inspect_container(container)["State"]["ExitCode"]
    finally:
        api.remove_container(container, v=True, force=True)
    return seconds, status


def measure_stop(bench: Bench, plain: RunOptions, dind: RunOptions) -> list:
    variants = {
        "plain": (plain, None, False),
        "none": (dind, None, True),
        "handles": (dind, HANDLES_TERM, True),
        "ignores": (dind, IGNORES_TERM, True),
    }
    seconds = {key: Samples() for key in variants}
    statuses = {key: set() for key in variants}
    for index in range(bench.args.runs):
        bench.progress("stop: run %d of %d", index + 1, bench.args.runs)
        for key, (options, inner, is_dind) in variants.items():
            took, status = stop_once(bench, options, inner, dind=is_dind)
            seconds[key].add(took)
            statuses[key].add(status)

    def exits(key) -> str:
        return "exit " + "/".join(str(status) for status in sorted(statuses[key]))

    reference = f"{seconds['plain']} ({exits('plain')})"
    rows = [
        Row(
            "`docker stop`, no inner container",
            reference,
            f"{seconds['none']} ({exits('none')})",
            _added(seconds["plain"], seconds["none"]),
        )
    ]
    for key, label, bold in (
        ("handles", "an inner container that handles SIGTERM", True),
        ("ignores", "an inner container that ignores SIGTERM (busybox sleep as PID 1)", False),
    ):
        text = f"`docker stop`, {label}"
        rows.append(
            Row(
                f"**{text}**" if bold else text,
                reference,
                f"{seconds[key]} ({exits(key)})",
                _added(seconds["plain"], seconds[key]),
                "< 2 s",
                _met(seconds[key].median < 2),
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------
# 5. Inner overhead: the same docker commands against the inner daemon and the host's engine


def _host_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        raise BenchError(f"the host's engine must answer on a unix socket, not {host!r}")
    return host[len("unix://") :]


def measure_inner(bench: Bench, dind: RunOptions) -> list:
    api = bench.client.api
    tag = f"{PREFIX}-{bench.run_id}"
    # Inside: a --docker-in-docker container, idle once its inner daemon is ready.
    inner = start_detached(bench, dind, ["sleep", "infinity"], "inner")
    # The host's engine: the same image and CLI, the entrypoint bypassed (no inner daemon), the
    # host's socket mounted where the docker command looks.
    host = RunOptions(dind.image).create(
        bench.client,
        ["infinity"],
        name=bench.name("host"),
        labels=bench.labels,
        binds=[f"{bench.context}:/bench:ro", f"{_host_socket()}:/var/run/docker.sock"],
        entrypoint=["sleep"],
    )
    api.start(host)
    sides = {"host": host, "inner": inner}
    samples = {side: {"run": Samples(), "build": Samples()} for side in sides}
    try:
        wait_for_log(bench, inner, READY)
        for side, container in sides.items():
            daemon = exec_in(bench, container, ["/bench/time-docker.sh", "prepare", tag])
            if side == "inner":
                bench.inner_daemon = daemon.split("\n")[0].removeprefix("daemon ").strip()
        for index in range(bench.args.runs):
            bench.progress("inner overhead: run %d of %d", index + 1, bench.args.runs)
            for side, container in sides.items():
                output = exec_in(bench, container, ["/bench/time-docker.sh", "sample", tag])
                for line in output.splitlines():
                    kind, start, end = line.split()
                    samples[side][kind].add(float(end) - float(start))
        for container in sides.values():
            exec_in(bench, container, ["/bench/time-docker.sh", "clean", tag])
    finally:
        for container in sides.values():
            api.remove_container(container, v=True, force=True)

    rows = []
    for kind, label in (
        ("run", "`docker run --rm` of a busybox image"),
        ("build", "`docker build --no-cache`, 3 steps, 16 MB written"),
    ):
        ratio = _ratio(samples["host"][kind], samples["inner"][kind])
        rows.append(
            Row(
                f"**{label}**, inner daemon vs the host's",
                str(samples["host"][kind]),
                str(samples["inner"][kind]),
                f"{ratio:.2f}×",
                "≤ 1.30×",
                _met(ratio <= 1.3),
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------
# The machine and the report


def machine(bench: Bench) -> list:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        memory = int(meminfo.readline().split()[1]) / 1024**2
    info = bench.client.info()
    engine = bench.client.version()["Version"]
    return [
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB; Linux {platform.release()}; "
        f"{_os_name()}",
        f"Docker Engine {engine}, cgroup v{info.get('CgroupVersion', '?')} "
        f"({info.get('CgroupDriver', '?')} driver), storage {info.get('Driver', '?')}; "
        f"inner daemon: {bench.inner_daemon or 'not measured'}",
        f"rocker {metadata.version('rocker')}, deps_rocker {_source_version()}",
        f"Beside the benchmark: up to {max(bench.others)} other container(s) running on the "
        "engine; highest load average during "
        + ", ".join(f"{name} {load:.1f}" for name, load in bench.loads.items()),
    ]


def _os_name() -> str:
    try:
        release = platform.freedesktop_os_release()  # Python 3.10 and later
    except (AttributeError, OSError):
        release = {}
        with contextlib.suppress(OSError), open("/etc/os-release", encoding="utf-8") as file:
            for line in file:
                key, _, value = line.strip().partition("=")
                release[key] = value.strip('"')
    return release.get("PRETTY_NAME", "unknown OS")


def _source_version() -> str:
    """The deps_rocker that rocker loads here: a commit when it is a git checkout."""
    spec = importlib.util.find_spec("deps_rocker")
    if spec is None or spec.origin is None:
        return "not installed"
    source = Path(spec.origin).resolve().parent.parent

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", "-C", str(source), *args], capture_output=True, text=True, check=False
        )
        return result.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return f"{metadata.version('deps-rocker')} from {source}"
    changed = git("status", "--porcelain", "--", "deps_rocker")
    return f"{commit} ({source})" + (" with uncommitted changes in deps_rocker/" if changed else "")


def render(bench: Bench, sections: list, machine_lines: list, failures: list) -> str:
    today = datetime.date.today().isoformat()
    command = shlex.join(["python", "benchmarks/run.py", *bench.argv])
    lines = [
        f"`{command}` on {today}: packages mode {bench.args.packages}, base image "
        f"{bench.args.base_image}, {bench.args.runs} runs per measure. Times are medians "
        "(min–max) in seconds; the reference is the same thing without --docker-in-docker "
        "unless the measure names another.",
        "",
        *[f"- {line}" for line in machine_lines],
        "",
        "| # | Measure | Reference | --docker-in-docker | Cost | Target | Met |",
        "|---|---|---|---|---|---|---|",
    ]
    for number, rows in sections:
        for row in rows:
            cells = [number, row.measure, row.reference, row.ours, row.cost, row.target, row.met]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    notes = []
    if any("†" in row.ours + row.reference for _, rows in sections for row in rows):
        notes.append(
            f"† high spread: the slowest run took over {NOISY}× the median. Other work shared "
            f"the engine and the {os.cpu_count()} cores (see above)."
        )
    notes.extend(f"Failed: {failure}" for failure in failures)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Measure what rocker's --docker-in-docker costs; print a Markdown table."
    )
    parser.add_argument("--runs", type=int, default=10, help="runs per measure (default 10)")
    parser.add_argument(
        "--packages",
        choices=PACKAGES_MODES,
        default="distro",
        help="packages mode of the image the times are taken with (default distro, which "
        "needs only a Debian mirror); the size is measured for every mode that can be built",
    )
    parser.add_argument(
        "--base-image", default="debian:13", help="the image rocker builds on (default debian:13)"
    )
    parser.add_argument(
        "--keep-images",
        action="store_true",
        help="keep the images rocker built, so that a rerun skips the build",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, not {args.runs}")
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s", stream=sys.stderr)

    try:
        bench = Bench(args, sys.argv[1:] if argv is None else argv)
    except docker.errors.DockerException as error:
        log.error("no Docker engine answers (%s); run scripts/provision-test-host.sh", error)
        return 1
    sections, failures = [], []
    began = time.monotonic()
    try:
        bench.prepare()
        bench.images.append(bench.dind_image)
        bench.progress("building the images with rocker (cached after the first time)")
        plain = rocker_run_options(bench, ["--image-name", PLAIN_IMAGE])
        dind = rocker_run_options(bench, dind_args(bench.dind_image, args.packages))
        measures = (
            ("1", "start", lambda: measure_start(bench, plain, dind)),
            ("2", "warm run", lambda: measure_warm_run(bench)),
            ("3", "size", lambda: measure_size(bench)),
            ("4", "stop", lambda: measure_stop(bench, plain, dind)),
            ("5", "inner overhead", lambda: measure_inner(bench, dind)),
        )
        for number, name, measure in measures:
            bench.measure = name
            bench.progress("measuring %s", name)
            try:
                rows = measure()
            except (BenchError, docker.errors.DockerException) as error:
                log.error("%s failed: %s", name, error)
                failures.append(f"{name}: {str(error).splitlines()[0]}")
                continue
            sections.append((number, rows))
    except (BenchError, docker.errors.DockerException) as error:
        log.error("%s", error)
        return 1
    finally:
        log.info("cleaning up")
        bench.cleanup()
    log.info("done in %.0f s", time.monotonic() - began)
    print(render(bench, sections, machine(bench), failures), end="")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
