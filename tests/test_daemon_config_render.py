"""The inner daemon's options without a daemon: parsing, validation, the daemon.json rocker
writes, the install step and the docker run arguments they lead to."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
from pathlib import Path

import docker
import pytest

from deps_rocker import docker_in_docker
from deps_rocker.docker_in_docker import DockerInDocker, daemon_settings

HOST_HAS_IMAGE = docker_in_docker._host_has_image  # the real one, which a fixture replaces

# A daemon.json as a user might keep one beside their project.
DAEMON_CONFIG = """{
  "log-level": "warn",
  "registry-mirrors": ["https://mirror.example.com"],
  "features": {"containerd-snapshotter": false}
}
"""


@pytest.fixture
def extension(monkeypatch):
    """The extension with no engine behind it: an empty base image config, every image present."""
    monkeypatch.setattr(DockerInDocker, "_base_image_config", lambda self, cliargs: {})
    monkeypatch.setattr(docker_in_docker, "_host_has_image", lambda image: True)
    return DockerInDocker()


def parse(*argv: str) -> dict:
    parser = argparse.ArgumentParser(prog="rocker")
    DockerInDocker.register_arguments(parser, {})
    return vars(parser.parse_args(["--docker-in-docker", *argv]))


def refused(capsys, *argv: str) -> str:
    """rocker's exit for a bad option value (2), and argparse's message."""
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def validate(extension, capsys, cliargs: dict) -> str:
    """validate_environment's parser.error: exit 2 and its message."""
    parser = argparse.ArgumentParser(prog="rocker")
    with pytest.raises(SystemExit) as exit_info:
        extension.validate_environment(cliargs, parser)
    assert exit_info.value.code == 2
    return " ".join(capsys.readouterr().err.split())


@pytest.fixture
def config_file(tmp_path):
    def write(text: str) -> str:
        path = tmp_path / "daemon.json"
        path.write_text(text)
        return str(path)

    return write


def test_options_default_to_nothing_set():
    cliargs = parse()
    for option in (
        "storage_driver",
        "daemon_config",
        "registry_mirror",
        "insecure_registry",
        "mtu",
        "address_pool",
        "version",
        "volume",
        "load",
    ):
        assert cliargs[f"docker_in_docker_{option}"] is None, option
    assert daemon_settings(cliargs) == {}


def test_options_become_daemon_json_settings():
    cliargs = parse(
        *("--docker-in-docker-storage-driver", "vfs"),
        *("--docker-in-docker-registry-mirror", "https://mirror.example.com"),
        *("--docker-in-docker-registry-mirror", "http://10.0.0.5:5000"),
        *("--docker-in-docker-insecure-registry", "registry.local:5000"),
        *("--docker-in-docker-insecure-registry", "10.0.0.0/8"),
        *("--docker-in-docker-insecure-registry", "[fd00::1]:5000"),
        *("--docker-in-docker-mtu", "1400"),
        *("--docker-in-docker-address-pool", "10.201.0.0/16/24"),
        *("--docker-in-docker-address-pool", "fd00:dead::/48/64"),
    )
    assert daemon_settings(cliargs) == {
        "storage-driver": "vfs",
        "registry-mirrors": ["https://mirror.example.com", "http://10.0.0.5:5000"],
        "insecure-registries": ["registry.local:5000", "10.0.0.0/8", "[fd00::1]:5000"],
        "mtu": 1400,
        "default-address-pools": [
            {"base": "10.201.0.0/16", "size": 24},
            {"base": "fd00:dead::/48", "size": 64},
        ],
    }


def test_mtu_auto_leaves_it_to_the_container():
    assert parse("--docker-in-docker-mtu", "auto")["docker_in_docker_mtu"] == "auto"
    assert "mtu" not in daemon_settings(parse("--docker-in-docker-mtu", "auto"))


def test_config_file_is_the_base_and_options_add_to_its_lists(config_file):
    cliargs = parse(
        *("--docker-in-docker-daemon-config", config_file(DAEMON_CONFIG)),
        *("--docker-in-docker-registry-mirror", "https://mirror.example.com"),
        *("--docker-in-docker-registry-mirror", "https://second.example.com"),
        *("--docker-in-docker-storage-driver", "overlay2"),
    )
    assert daemon_settings(cliargs) == {
        "log-level": "warn",
        "registry-mirrors": ["https://mirror.example.com", "https://second.example.com"],
        "features": {"containerd-snapshotter": False},
        "storage-driver": "overlay2",
    }


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--docker-in-docker-storage-driver", "aufs"], "invalid choice: 'aufs'"),
        (["--docker-in-docker-mtu", "10"], "'10' is not an MTU"),
        (["--docker-in-docker-mtu", "big"], "'big' is not an MTU"),
        (["--docker-in-docker-registry-mirror", "mirror.example.com"], "'mirror.example.com'"),
        (["--docker-in-docker-registry-mirror", "ftp://mirror.example.com"], "'ftp://"),
        (["--docker-in-docker-registry-mirror", "https://m.example.com/?x=1"], "'https://m."),
        (["--docker-in-docker-registry-mirror", "https://m.example.com:port"], "'https://m."),
        (["--docker-in-docker-insecure-registry", "http://registry.local"], "leave out the"),
        (["--docker-in-docker-insecure-registry", "registry.local:99999"], "'registry.local:"),
        (["--docker-in-docker-insecure-registry", "10.0.0.0/40"], "'10.0.0.0/40'"),
        (["--docker-in-docker-insecure-registry", "bad_host"], "'bad_host'"),
        (["--docker-in-docker-address-pool", "10.201.0.0/16"], "'10.201.0.0/16'"),
        (["--docker-in-docker-address-pool", "10.201.0.1/16/24"], "'10.201.0.1/16/24'"),
        (["--docker-in-docker-address-pool", "10.201.0.0/16/8"], "'10.201.0.0/16/8'"),
        (["--docker-in-docker-address-pool", "10.201.0.0/16/33"], "'10.201.0.0/16/33'"),
        (["--docker-in-docker-version", "latest"], "'latest' is not a Docker version"),
        (["--docker-in-docker-version", "27.x"], "'27.x' is not a Docker version"),
        (["--docker-in-docker-volume", "/var/lib/dind"], "'/var/lib/dind' is not a volume"),
        (["--docker-in-docker-volume", "a"], "'a' is not a volume name"),
    ],
)
def test_bad_values_exit_2_naming_the_value_and_what_works(capsys, argv, says):
    message = " ".join(refused(capsys, *argv).split())
    assert f"argument {argv[0]}:" in message
    assert says in message
    # ... and what would be accepted: a choice list or an example.
    assert "choose from" in message or "such as" in message or "give" in message


def test_mirror_with_credentials_is_refused_without_echoing_them(capsys):
    message = refused(capsys, "--docker-in-docker-registry-mirror", "https://me:s3cret@m.example")
    assert "m.example" in message
    assert "s3cret" not in message


def test_load_takes_several_images_and_adds_up_over_repeats():
    cliargs = parse(
        *("--docker-in-docker-load", "a:1", "b:2"),
        *("--docker-in-docker-load", "c:3"),
    )
    assert cliargs["docker_in_docker_load"] == ["a:1", "b:2", "c:3"]


@pytest.mark.parametrize(
    "text, says",
    [
        ('{"log-level": "warn",\n  "debug": tru}\n', "not valid JSON at line 2, column 12"),
        ('{"log-level": "warn"', "not valid JSON at line 1, column 21"),
        ('["https://mirror.example.com"]', "holds a list; a daemon.json holds one JSON object"),
        ('"warn"', "holds a string"),
        ('{"storage-driver": "aufs"}', '"storage-driver": "aufs" is not a driver'),
    ],
)
def test_bad_config_file_is_refused_naming_file_and_place(
    extension, capsys, config_file, text, says
):
    path = config_file(text)
    message = validate(extension, capsys, parse("--docker-in-docker-daemon-config", path))
    assert f"--docker-in-docker-daemon-config {path}:" in message
    assert says in message


def test_missing_config_file_is_refused(extension, capsys, tmp_path):
    path = tmp_path / "nowhere.json"
    message = validate(extension, capsys, parse("--docker-in-docker-daemon-config", str(path)))
    assert f"{path}: cannot read it: No such file or directory" in message


def test_option_that_contradicts_the_config_file_is_refused(extension, capsys, config_file):
    path = config_file('{"mtu": 1500}')
    cliargs = parse("--docker-in-docker-daemon-config", path, "--docker-in-docker-mtu", "1400")
    message = validate(extension, capsys, cliargs)
    assert f"--docker-in-docker-mtu 1400 and --docker-in-docker-daemon-config {path}" in message
    assert '"mtu": 1500' in message
    # The same value in both places is no contradiction.
    same = parse("--docker-in-docker-daemon-config", path, "--docker-in-docker-mtu", "1500")
    assert daemon_settings(same)["mtu"] == 1500


def test_list_option_cannot_add_to_a_config_value_that_is_no_list(extension, capsys, config_file):
    path = config_file('{"insecure-registries": "registry.local"}')
    cliargs = parse(
        "--docker-in-docker-daemon-config",
        path,
        "--docker-in-docker-insecure-registry",
        "other.local",
    )
    message = validate(extension, capsys, cliargs)
    assert '"insecure-registries" is a string' in message
    assert "give a list of strings" in message


def test_version_in_distro_mode_is_refused(extension, capsys):
    cliargs = parse("--docker-in-docker-packages", "distro", "--docker-in-docker-version", "27.3.1")
    message = validate(extension, capsys, cliargs)
    assert "--docker-in-docker-version 27.3.1 needs --docker-in-docker-packages docker-ce" in (
        message
    )


def test_version_in_docker_ce_mode_pins_the_install(extension):
    cliargs = parse("--docker-in-docker-version", "27.3.1")
    extension.validate_environment(cliargs, argparse.ArgumentParser())
    snippet = extension.get_snippet(cliargs)
    assert "RUN sh /usr/local/lib/deps-rocker/install-docker --version 27.3.1 docker-ce\n" in (
        snippet
    )


def test_only_fuse_overlayfs_changes_the_install_step(extension):
    plain = "RUN sh /usr/local/lib/deps-rocker/install-docker distro\n"
    for driver in ("overlay2", "vfs", "btrfs", "zfs"):
        cliargs = parse(
            "--docker-in-docker-packages", "distro", "--docker-in-docker-storage-driver", driver
        )
        assert plain in extension.get_snippet(cliargs), driver
    cliargs = parse(
        "--docker-in-docker-packages",
        "distro",
        "--docker-in-docker-storage-driver",
        "fuse-overlayfs",
    )
    assert (
        "RUN sh /usr/local/lib/deps-rocker/install-docker --storage-driver fuse-overlayfs distro\n"
        in extension.get_snippet(cliargs)
    )


def test_missing_host_image_to_load_is_refused(extension, capsys, monkeypatch):
    monkeypatch.setattr(docker_in_docker, "_host_has_image", lambda image: image == "here:1")
    cliargs = parse("--docker-in-docker-load", "here:1", "gone:2")
    message = validate(extension, capsys, cliargs)
    assert "--docker-in-docker-load: the host's engine has no image 'gone:2'." in message
    assert "here:1" not in message


def test_settings_are_written_to_the_build_context_and_copied(extension, config_file):
    cliargs = parse(
        "--docker-in-docker-daemon-config",
        config_file(DAEMON_CONFIG),
        "--docker-in-docker-address-pool",
        "10.201.0.0/16/24",
    )
    files = extension.get_files(cliargs)
    assert json.loads(files["docker_in_docker/daemon.json"]) == daemon_settings(cliargs)
    snippet = extension.get_snippet(cliargs)
    copy = "COPY docker_in_docker/daemon.json /usr/local/lib/deps-rocker/daemon.json\n"
    assert copy in snippet
    # Late in the Dockerfile: other settings reuse the cached install.
    assert snippet.index("RUN sh /usr/local/lib/deps-rocker/install-docker") < snippet.index(copy)
    assert json.loads(extension.get_files(parse())["docker_in_docker/daemon.json"]) == {}


def test_named_volume_replaces_the_anonymous_one(extension):
    args = shlex.split(extension.get_docker_args(parse("--docker-in-docker-volume", "dind-store")))
    assert args[args.index("--privileged") + 1 : args.index("--privileged") + 3] == [
        "--volume",
        "dind-store:/var/lib/docker",
    ]
    assert "/var/lib/docker" not in args
    assert "DEPS_ROCKER_DIND_VOLUME=dind-store" in args


class FakeClient:
    """The part of the docker SDK's low-level client that saving images uses."""

    def __init__(self):
        self.saved = []

    def get_image(self, image):
        self.saved.append(image)
        yield f"archive of {image}".encode()


@pytest.fixture
def fake_client(monkeypatch):
    client = FakeClient()
    monkeypatch.setattr(docker_in_docker, "get_docker_client", lambda: client)
    return client


@pytest.fixture
def exit_hooks(monkeypatch):
    hooks = []
    monkeypatch.setattr(docker_in_docker.atexit, "register", lambda *args, **kw: hooks.append(args))
    return hooks


def test_images_to_load_are_saved_and_mounted_read_only(extension, fake_client, exit_hooks):
    cliargs = {**parse("--docker-in-docker-load", "a:1", "b:2"), "mode": "non-interactive"}
    extension.precondition_environment(cliargs)
    args = shlex.split(extension.get_docker_args(cliargs))
    mount = args[args.index("--volume", args.index("--env")) + 1]
    folder, inside, options = mount.split(":")
    assert (inside, options) == ("/run/docker-in-docker/load", "ro")
    archives = sorted(p.name for p in Path(folder).iterdir())
    assert archives == ["000.tar", "001.tar"]
    assert fake_client.saved == ["a:1", "b:2"]
    # Removed when rocker exits: the container is gone by then.
    assert exit_hooks and exit_hooks[0][1] == folder
    exit_hooks[0][0](folder, ignore_errors=True)


@pytest.mark.parametrize(
    "extra", [{"mode": "dry-run"}, {"detach": True}, {"nocleanup": True}], ids=str
)
def test_saved_images_stay_where_the_container_may_still_need_them(
    extension, fake_client, exit_hooks, capsys, extra
):
    cliargs = {**parse("--docker-in-docker-load", "a:1"), "mode": "non-interactive", **extra}
    extension.precondition_environment(cliargs)
    assert not exit_hooks
    folder = extension._load_folder
    assert f"docker-in-docker: the saved images stay in {folder}" in capsys.readouterr().err
    shutil.rmtree(folder)


def test_nothing_is_saved_without_load(extension, fake_client):
    extension.precondition_environment({**parse(), "mode": "non-interactive"})
    assert fake_client.saved == []
    assert ":/run/docker-in-docker/load" not in extension.get_docker_args(parse())


@pytest.mark.parametrize(
    "option, value",
    [
        ("--docker-in-docker-timeout", "+60"),
        ("--docker-in-docker-timeout", " 60"),
        ("--docker-in-docker-timeout", "\u0666\u0660"),
        ("--docker-in-docker-mtu", "1_400"),
        ("--docker-in-docker-registry-mirror", "https://m.example.com\nfoo"),
        ("--docker-in-docker-registry-mirror", "https://m.ex ample.com"),
        ("--docker-in-docker-registry-mirror", "https://m.example.com/%zz"),
        ("--docker-in-docker-registry-mirror", "https://m.example.com\\x"),
        ("--docker-in-docker-insecure-registry", "r.lab:"),
        ("--docker-in-docker-insecure-registry", "r.lab:\uff15\uff10\uff10\uff10"),
        ("--docker-in-docker-insecure-registry", "r.lab:\u00b2"),
        ("--docker-in-docker-insecure-registry", "[::1"),
        ("--docker-in-docker-address-pool", "fd00::/8/64"),
        ("--docker-in-docker-address-pool", "0.0.0.0/0/32"),
        ("--docker-in-docker-address-pool", "10.201.0.0/16/32"),
        ("--docker-in-docker-address-pool", "127.0.0.0/8/24"),
        ("--docker-in-docker-address-pool", "224.0.0.0/4/24"),
        ("--docker-in-docker-version", "\u0662\u0667"),
        ("--docker-in-docker-volume", "v" * 256),
    ],
)
def test_lenient_values_are_refused_before_the_build(option, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(option, value)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert option in error
    assert "invalid" in error or "is not" in error


@pytest.mark.parametrize(
    "text, says",
    [
        ('{"mtu": NaN}', "NaN is not JSON"),
        ('{"mtu": 1e400}', "too large a number"),
        ("[" * 100000 + "]" * 100000, "not JSON dockerd can read"),
        ('{"data-root": "/data"}', '"data-root" is set by the entrypoint'),
        ('{"hosts": ["tcp://0.0.0.0:2375"]}', '"hosts" is set by the entrypoint'),
        ('{"mtu": true}', '"mtu" is a boolean'),
        ('{"mtu": 10}', "is not an MTU"),
        ('{"registry-mirrors": "https://m.example.com"}', '"registry-mirrors" is a string'),
        ('{"registry-mirrors": ["ftp://m"]}', "is not a registry mirror"),
        ('{"default-address-pools": [{"base": "fd00::/8", "size": 64}]}', "usable address pool"),
        ('{"log-level": "' + "x" * (1 << 20) + '"}', "larger than 1024 KiB"),
    ],
)
def test_daemon_config_content_is_checked_before_the_build(
    extension, capsys, config_file, text, says
):
    message = validate(
        extension, capsys, parse("--docker-in-docker-daemon-config", config_file(text))
    )
    assert says in message


def test_empty_daemon_config_path_is_refused(extension, capsys):
    message = validate(extension, capsys, parse("--docker-in-docker-daemon-config", ""))
    assert "--docker-in-docker-daemon-config '': cannot read it" in message


def test_daemon_config_is_read_once(extension, tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text('{"log-level": "warn"}')
    cliargs = parse("--docker-in-docker-daemon-config", str(path))
    extension.validate_environment(cliargs, argparse.ArgumentParser())
    path.write_text("not json any more")  # a pipe is empty on a second read
    assert daemon_settings(cliargs) == {"log-level": "warn"}


@pytest.mark.parametrize("image", ["Debian:13", "", " ", "debian:13;id"])
def test_malformed_image_to_load_is_refused(extension, capsys, monkeypatch, image):
    class Engine:
        def inspect_image(self, name):
            if not name:
                raise docker.errors.NullResource("Resource ID was not provided")
            raise docker.errors.APIError("invalid reference format", response=_Response(400))

    monkeypatch.setattr(docker_in_docker, "get_docker_client", Engine)
    monkeypatch.setattr(docker_in_docker, "_host_has_image", HOST_HAS_IMAGE)
    message = validate(extension, capsys, parse("--docker-in-docker-load", image))
    assert "--docker-in-docker-load: the host's engine has no image" in message


class _Response:
    def __init__(self, status_code):
        self.status_code = status_code
        self.reason = "Bad Request"


@pytest.mark.parametrize(
    "argv",
    [
        ["--docker-in-docker-volume", "dind-store"],
        ["--docker-in-docker-daemon-config", "/nonexistent"],
        ["--docker-in-docker-load", "debian:13"],
        ["--docker-in-docker-mtu", "1400"],
    ],
)
def test_an_option_without_the_flag_is_refused(argv, capsys):
    parser = argparse.ArgumentParser(prog="rocker")
    DockerInDocker.register_arguments(parser, {})
    cliargs = vars(parser.parse_args(argv))
    assert DockerInDocker.check_args_for_activation(cliargs)
    with pytest.raises(SystemExit) as exit_info:
        DockerInDocker().validate_environment(cliargs, parser)
    assert exit_info.value.code == 2
    assert f"{argv[0]} given without --docker-in-docker" in capsys.readouterr().err


def test_plain_rocker_leaves_the_extension_inactive():
    parser = argparse.ArgumentParser(prog="rocker")
    DockerInDocker.register_arguments(parser, {})
    assert not DockerInDocker.check_args_for_activation(vars(parser.parse_args([])))
