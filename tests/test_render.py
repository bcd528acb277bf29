"""Rendering without a daemon: the Dockerfile snippet, the docker run arguments, the options."""

from __future__ import annotations

import argparse
import json
import re
import shlex
from importlib.metadata import entry_points

import pytest

from deps_rocker.docker_in_docker import DockerInDocker

BASE_WITH_ENTRYPOINT = {"Entrypoint": ["/ros_entrypoint.sh"], "Cmd": ["bash"], "User": ""}


@pytest.fixture
def extension(monkeypatch):
    """The extension with the base image's config faked: no engine is asked."""
    config = dict(BASE_WITH_ENTRYPOINT)
    monkeypatch.setattr(DockerInDocker, "_base_image_config", lambda self, cliargs: config)
    ext = DockerInDocker()
    ext.base_config = config
    return ext


def parse(*argv: str) -> dict:
    parser = argparse.ArgumentParser()
    DockerInDocker.register_arguments(parser, {})
    return vars(parser.parse_args(list(argv)))


def rocker_entry_points():
    """The rocker.extensions entry points. Python 3.9's entry_points() takes no selection and
    returns a dict by group; rocker's own list_plugins() reads them the same way."""
    everything = entry_points()
    if hasattr(everything, "select"):
        return everything.select(group="rocker.extensions")
    return everything.get("rocker.extensions", ())


def test_registered_as_rocker_extension():
    found = {ep.name: ep for ep in rocker_entry_points()}
    assert found["docker_in_docker"].load() is DockerInDocker
    assert DockerInDocker.get_name() == "docker_in_docker"


def test_flag_defaults(extension):
    cliargs = parse()
    assert cliargs["docker_in_docker"] is False
    assert parse("--docker-in-docker")["docker_in_docker"] is True
    # Unset options take their defaults where they are used: docker-ce packages, 60 s.
    assert "install-docker docker-ce\n" in extension.get_snippet(cliargs)
    assert "DEPS_ROCKER_DIND_TIMEOUT=60" in extension.get_docker_args(cliargs)


def test_help_names_each_default_once():
    parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    DockerInDocker.register_arguments(parser, {})
    text = " ".join(parser.format_help().split())
    for option in text.split(" --")[1:]:
        assert option.count("default") <= 1, option
    assert "docker-ce, the default" in text
    assert "(default: 60)" in text


@pytest.mark.parametrize("mode", ["docker-ce", "distro"])
def test_snippet_installs_in_the_chosen_mode(extension, mode):
    snippet = extension.get_snippet(parse("--docker-in-docker-packages", mode))
    assert f"RUN sh /usr/local/lib/deps-rocker/install-docker {mode}\n" in snippet
    assert "COPY docker_in_docker/install-docker " in snippet
    assert "@" not in snippet.replace("@@", "")  # no empy markup left over


def test_snippet_is_deterministic(extension):
    cliargs = parse("--docker-in-docker")
    assert extension.get_snippet(cliargs) == extension.get_snippet(dict(cliargs))


def test_snippet_keeps_base_entrypoint_and_cmd(extension):
    snippet = extension.get_snippet(parse())
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.*)$", snippet, re.M).group(1))
    assert entrypoint[:3] == ["/usr/bin/docker-init", "-g", "--"]
    assert entrypoint[3] == "/usr/local/lib/deps-rocker/entrypoint"
    assert entrypoint[4:] == ["/ros_entrypoint.sh"]
    assert re.search(r"^CMD \[\"bash\"\]$", snippet, re.M)


def test_snippet_without_base_cmd_sets_none(extension):
    extension.base_config.update(Entrypoint=None, Cmd=None)
    snippet = extension.get_snippet(parse())
    assert "CMD" not in snippet
    assert json.loads(re.search(r"^ENTRYPOINT (.*)$", snippet, re.M).group(1))[4:] == []


def test_snippet_adds_rocker_user_to_docker_group(extension):
    cliargs = {**parse(), "user": True, "user_override_name": "robot"}
    assert 'usermod -aG docker "$(id -nu robot)"' in extension.get_snippet(cliargs)
    assert "usermod" not in extension.get_snippet(parse())


def test_ordered_after_user_extension(extension):
    assert "user" in extension.invoke_after(parse())


def test_docker_args_survive_rocker_gluing(extension):
    args = extension.get_docker_args(parse("--docker-in-docker-timeout", "7"))
    assert args.startswith(" ")
    assert shlex.split(args) == [
        "--privileged",
        "--volume",
        "/var/lib/docker",
        "--env",
        "DEPS_ROCKER_DIND_TIMEOUT=7",
    ]


def test_wait_option_reaches_the_entrypoint(extension):
    args = shlex.split(extension.get_docker_args(parse("--docker-in-docker-wait")))
    assert args[-2:] == ["--env", "DEPS_ROCKER_DIND_WAIT=1"]
    assert "DEPS_ROCKER_DIND_WAIT=1" not in extension.get_docker_args(parse())


def test_files_ship_the_scripts(extension):
    files = extension.get_files(parse())
    assert set(files) == {
        "docker_in_docker/install-docker",
        "docker_in_docker/dind-daemon",
        "docker_in_docker/entrypoint",
        "docker_in_docker/sudoers",
        "docker_in_docker/daemon.json",  # rocker's settings for the inner daemon
    }
    for name in ("install-docker", "dind-daemon", "entrypoint"):
        assert files[f"docker_in_docker/{name}"].startswith("#!/bin/sh\n")


def test_snippet_copies_every_shipped_file(extension):
    snippet = extension.get_snippet(parse())
    for path in extension.get_files(parse()):
        assert path in snippet


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--docker-in-docker-packages", "snap"], "snap"),
        (["--docker-in-docker-timeout", "0"], "0"),
        (["--docker-in-docker-timeout", "-5"], "-5"),
        (["--docker-in-docker-timeout", "ten"], "ten"),
        (["--docker-in-docker-timeout", "99999"], "99999"),
    ],
)
def test_bad_option_values_exit_2_naming_the_value(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert f"'{named}'" in message
    assert "docker-ce" in message or "whole number of seconds" in message


def test_base_user_is_restored_without_rocker_user(extension):
    extension.base_config["User"] = "builder:builder"
    assert 'usermod -aG docker "$(id -nu builder)"' in extension.get_snippet(parse())
    assert extension.get_user_snippet(parse()).strip().endswith("USER builder:builder")
    with_user = {**parse(), "user": True, "user_override_name": "robot"}
    assert "USER" not in extension.get_user_snippet(with_user)
    assert "builder" not in extension.get_snippet(with_user)


@pytest.mark.parametrize("user", ["", "root", "0", "0:0"])
def test_root_base_user_is_left_alone(extension, user):
    extension.base_config["User"] = user
    assert extension.get_user_snippet(parse()) == ""
    assert "usermod" not in extension.get_snippet(parse())


def test_inner_cli_points_at_inner_daemon(extension):
    assert "ENV DOCKER_HOST=unix:///var/run/docker.sock\n" in extension.get_snippet(parse())


def validate(**cliargs):
    parser = argparse.ArgumentParser(prog="rocker")
    DockerInDocker().validate_environment({"docker_in_docker": True, **cliargs}, parser)


@pytest.mark.parametrize(
    "volume", ["/var/run/docker.sock:/var/run/docker.sock", "/run/docker.sock", "/var/run:/host"]
)
def test_host_socket_mount_is_refused(volume, capsys):
    with pytest.raises(SystemExit) as exit_info:
        validate(volume=[["/tmp:/tmp", volume]])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"--volume {volume.split(':')[0]}" in error
    assert "Docker-out-of-Docker" in error


def test_host_network_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        validate(network="host")
    assert exit_info.value.code == 2
    assert "--network host" in capsys.readouterr().err


def test_an_option_after_the_double_dash_is_refused(capsys):
    # rocker --docker-in-docker-load IMG -- --volume /x:/t -- debian:13: argparse takes
    # "--volume" for the image.
    with pytest.raises(SystemExit) as exit_info:
        validate(image="--volume", command="/x:/t -- debian:13")
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "rocker's image is '--volume'" in error
    assert "a single -- just before the image" in error


def test_snippet_has_dockerd_judge_rockers_settings_at_build_time(extension):
    snippet = extension.get_snippet(parse())
    assert snippet.index("COPY docker_in_docker/daemon.json") < snippet.index(
        "RUN /usr/local/lib/deps-rocker/dind-daemon check-config"
    )


def test_ordinary_volumes_and_networks_pass():
    validate(volume=[["/tmp:/work", "/home"]], network="bridge")


def test_base_built_with_this_extension_gets_one_init(extension):
    ours = ["/usr/bin/docker-init", "-g", "--", "/usr/local/lib/deps-rocker/entrypoint"]
    extension.base_config["Entrypoint"] = [*ours, "/ros_entrypoint.sh"]
    snippet = extension.get_snippet(parse())
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.*)$", snippet, re.M).group(1))
    assert entrypoint == [*ours, "/ros_entrypoint.sh"]


def test_nvidia_says_what_inner_containers_get(capsys):
    validate(nvidia=True)
    assert "not to the inner containers" in capsys.readouterr().err


def test_base_image_is_inspected_once(monkeypatch):
    calls = []

    class Engine:
        def inspect_image(self, image):
            calls.append(image)
            return {"Config": {"Cmd": ["bash"]}}

    monkeypatch.setattr("deps_rocker.docker_in_docker.get_docker_client", Engine)
    extension = DockerInDocker()
    cliargs = {**parse(), "base_image": "debian:13"}
    extension.get_snippet(cliargs)
    extension.get_user_snippet(cliargs)
    assert calls == ["debian:13"]
