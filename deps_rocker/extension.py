"""The small protocol every deps_rocker extension follows.

A rocker extension has to register a flag, report its name, render Dockerfile text and hand
files to the build context. ``SimpleRockerExtension`` does all of that by convention, so a
subclass states only what is particular to it:

- ``name``: the entry-point name, which is also the argparse destination and gives the flag
  (``docker_in_docker`` -> ``--docker-in-docker``); rocker activates the extension when
  ``cliargs[name]`` is truthy.
- ``help``: the flag's help line in ``rocker --help``.
- ``templates/<name>_snippet.Dockerfile`` (run as root) and
  ``templates/<name>_user_snippet.Dockerfile`` (run as the image's user), both optional, are
  empy templates rendered with ``template_args()``. In empy, ``@`` starts markup: write ``@@``.
- Every file under ``files/<name>/`` is written into the build context under ``<name>/``, so a
  snippet can ``COPY <name>/some-file ...``.
- ``register_options()`` adds the extension's other options.
"""

from __future__ import annotations

import argparse
from importlib import resources

from rocker.core import RockerExtension
from rocker.em import empy_expand
from rocker.extensions import name_to_argument

_PACKAGE = resources.files("deps_rocker")


class SimpleRockerExtension(RockerExtension):
    name: str = ""
    help: str = ""

    @classmethod
    def get_name(cls) -> str:
        return cls.name

    @classmethod
    def register_arguments(cls, parser: argparse.ArgumentParser, defaults=None) -> None:
        defaults = defaults or {}
        parser.add_argument(
            name_to_argument(cls.name),
            action="store_true",
            default=defaults.get(cls.name, False),
            help=cls.help,
        )
        cls.register_options(parser, defaults)

    @classmethod
    def register_options(cls, parser: argparse.ArgumentParser, defaults: dict) -> None:
        """Add options beyond the flag itself; none by default."""

    def template_args(self, cliargs: dict) -> dict:
        """The names the extension's templates can use."""
        return {}

    def get_snippet(self, cliargs: dict) -> str:
        return self._render(f"{self.name}_snippet.Dockerfile", cliargs)

    def get_user_snippet(self, cliargs: dict) -> str:
        return self._render(f"{self.name}_user_snippet.Dockerfile", cliargs)

    def get_files(self, cliargs: dict) -> dict:
        root = _PACKAGE / "files" / self.name
        if not root.is_dir():
            return {}
        return {f"{self.name}/{relative}": content for relative, content in _walk(root, prefix="")}

    def _render(self, template_name: str, cliargs: dict) -> str:
        template = _PACKAGE / "templates" / template_name
        if not template.is_file():
            return ""
        return empy_expand(template.read_text(encoding="utf-8"), self.template_args(cliargs))


def _walk(directory, prefix: str):
    """Yield (relative path, text) for every file below a package-data directory, sorted."""
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        relative = f"{prefix}{entry.name}"
        if entry.is_dir():
            yield from _walk(entry, prefix=f"{relative}/")
        elif not entry.name.startswith(".") and entry.name != "__pycache__":
            yield relative, entry.read_text(encoding="utf-8")
