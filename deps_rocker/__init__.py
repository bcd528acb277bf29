"""rocker extensions by deps_rocker; the flagship is ``--docker-in-docker``."""

__version__ = "0.1.0"
