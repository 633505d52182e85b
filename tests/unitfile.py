"""Read systemd unit files the way systemd does, so tests can run exactly what a unit runs.

Covers the subset of systemd's syntax that geotasks' units use, and refuses anything else
(``ValueError``) rather than guess: sections and ``Key=value`` lines with ``#``/``;`` comments and
backslash continuations; the specifiers ``%i %I %n %N %p %%``; ``Environment=`` word lists;
``EnvironmentFile=`` contents; command lines with quotes, ``$NAME`` (split at whitespace) and
``${NAME}`` (one word) expansion and the ``-`` prefix; time spans (``11min``, ``5s``). Sources:
systemd.syntax(7), systemd.unit(5) "Specifiers", systemd.service(5) "Command lines",
systemd.exec(5) ``Environment=``/``EnvironmentFile=``, systemd.time(7).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: An environment variable name as systemd accepts it in ``$NAME`` and ``${NAME}``.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Seconds per unit of a systemd time span (systemd.time(7)).
TIME_UNITS_S = {
    "us": 1e-6,
    "usec": 1e-6,
    "ms": 1e-3,
    "msec": 1e-3,
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}


@dataclass(frozen=True)
class UnitFile:
    """A parsed unit file: every assignment of every section, in file order.

    Parameters:
      name: The unit's name, e.g. ``geotasks-worker@geo.service`` for an instance of a template.
      assignments: ``(section, key, raw value)`` triples, specifiers not yet expanded.
    """

    name: str
    assignments: tuple[tuple[str, str, str], ...]

    @classmethod
    def read(cls, path: Path, instance: str | None = None) -> UnitFile:
        """Parse ``path``; for a template (``name@.service``) ``instance`` names the instance."""
        name = path.name
        if "@." in name:
            if not instance:
                raise ValueError(f"{name} is a template: name an instance")
            name = name.replace("@.", f"@{instance}.")
        return cls(name, tuple(parse_assignments(path.read_text())))

    @property
    def instance(self) -> str:
        """The instance (``%i``): the part between ``@`` and the suffix, or empty."""
        prefix = self.name.rsplit(".", 1)[0]
        return prefix.split("@", 1)[1] if "@" in prefix else ""

    def expand(self, value: str) -> str:
        """Resolve the specifiers in ``value`` for this unit."""
        stem = self.name.rsplit(".", 1)[0]
        known = {
            "i": self.instance,
            "I": unescape_unit_name(self.instance),
            "n": self.name,
            "N": stem,
            "p": stem.split("@", 1)[0],
            "%": "%",
        }

        def replace(match: re.Match[str]) -> str:
            if match.group(1) not in known:
                raise ValueError(f"specifier %{match.group(1)} is not supported here: {value!r}")
            return known[match.group(1)]

        return re.sub(r"%(.)", replace, value)

    def values(self, section: str, key: str) -> list[str]:
        """Every value of ``key``, specifiers expanded; an empty assignment clears the list."""
        found: list[str] = []
        for sec, k, raw in self.assignments:
            if sec == section and k == key:
                found = [*found, self.expand(raw)] if raw else []
        return found

    def value(self, section: str, key: str, default: str | None = None) -> str:
        """The last value of ``key`` (the one systemd uses for a single-valued setting)."""
        found = self.values(section, key)
        if found:
            return found[-1]
        if default is None:
            raise KeyError(f"{self.name} has no {key}= in [{section}]")
        return default

    def environment(self, environment_files: Mapping[str, str]) -> dict[str, str]:
        """The variables the unit sets: ``Environment=``, then ``EnvironmentFile=`` (which wins).

        Parameters:
          environment_files: The text of each environment file, by the path the unit names.
            A file marked optional (``-/path``) may be missing; any other missing file is an
            error, as it is for systemd.
        """
        env: dict[str, str] = {}
        for value in self.values("Service", "Environment"):
            env.update(parse_environment_assignments(value))
        for value in self.values("Service", "EnvironmentFile"):
            optional = value.startswith("-")
            path = value.removeprefix("-")
            if path in environment_files:
                env.update(parse_environment_file(environment_files[path]))
            elif not optional:
                raise FileNotFoundError(f"{self.name}: EnvironmentFile={path} is missing")
        return env

    def command(self, key: str, environ: Mapping[str, str]) -> list[str]:
        """The argument vector of the one command line in ``key`` (``ExecStart``…).

        Raises:
          ValueError: when ``key`` holds more than one command, or uses an unsupported prefix.
        """
        lines = self.commands(key, environ)
        if len(lines) != 1:
            raise ValueError(f"{self.name}: expected one {key}=, found {len(lines)}")
        return lines[0]

    def commands(self, key: str, environ: Mapping[str, str]) -> list[list[str]]:
        """The argument vectors of every ``key`` command line, in order."""
        return [split_command_line(v, environ) for v in self.values("Service", key)]


def parse_assignments(text: str) -> list[tuple[str, str, str]]:
    """Return the ``(section, key, value)`` assignments of a unit file's text."""
    assignments: list[tuple[str, str, str]] = []
    section = ""
    pending = ""
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if not sep or not section:
            raise ValueError(f"line {number}: not a Key=value line in a section: {raw_line!r}")
        assignments.append((section, key.strip(), value.strip()))
    return assignments


def unescape_unit_name(escaped: str) -> str:
    """Undo systemd-escape on an instance name (``%I``): ``\\x2d`` → ``-``; ``-`` → ``/``."""
    return re.sub(
        r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), escaped.replace("-", "/")
    )


def parse_environment_assignments(value: str) -> dict[str, str]:
    """Parse the value of one ``Environment=`` line: ``A=1 "B=two words"``."""
    env: dict[str, str] = {}
    for word in shlex.split(value, posix=True):
        name, sep, val = word.partition("=")
        if not sep or not ENV_NAME.fullmatch(name):
            raise ValueError(f"not a NAME=value assignment: {word!r}")
        env[name] = val
    return env


def parse_environment_file(text: str) -> dict[str, str]:
    """Parse an ``EnvironmentFile=``: ``NAME=value`` lines, ``#``/``;`` comment lines.

    A value may be wholly in single quotes (taken literally) or double quotes (backslash escapes
    the next character); unquoted, surrounding whitespace is dropped.
    """
    env: dict[str, str] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line[0] in "#;":
            continue
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not ENV_NAME.fullmatch(name):
            raise ValueError(f"line {number}: not a NAME=value line: {raw_line!r}")
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        elif value[:1] in ("'", '"'):
            raise ValueError(f"line {number}: unterminated quote: {raw_line!r}")
        env[name] = value
    return env


def split_command_line(value: str, environ: Mapping[str, str]) -> list[str]:
    """Split an ``Exec*=`` value into the argument vector systemd would execute.

    ``$NAME`` as a whole word becomes the variable's value split at whitespace (zero or more
    words); ``${NAME}`` becomes its exact value, inside one word; ``$$`` is a literal ``$``;
    unset variables are empty. A leading ``-`` (failure ignored) is dropped.

    Raises:
      ValueError: for the prefixes ``@ + ! :``, which this helper does not model, or a ``$``
        that is neither form.
    """
    command = value.lstrip()
    command = command.removeprefix("-")
    if command[:1] in ("@", "+", "!", ":", "-"):
        raise ValueError(f"unsupported command prefix in {value!r}")
    argv: list[str] = []
    for word in shlex.split(command, posix=True):
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            argv.extend(environ.get(whole.group(1), "").split())
        else:
            argv.append(_expand_braced(word, environ))
    if not argv or not argv[0].startswith("/"):
        raise ValueError(f"the command must start with an absolute path: {value!r}")
    return argv


def _expand_braced(word: str, environ: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group(1) is None:
            raise ValueError(f"a $ that is neither $NAME (a whole word) nor ${{NAME}}: {word!r}")
        return environ.get(match.group(1), "")

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$", replace, word)


def parse_timespan_s(value: str) -> float:
    """Parse a systemd time span (``11min``, ``5s``, ``1min 30s``, a bare number = seconds)."""
    parts = re.findall(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s+", "", value):
        raise ValueError(f"not a time span: {value!r}")
    total = 0.0
    for number, unit in parts:
        if unit not in TIME_UNITS_S:
            raise ValueError(f"unknown time unit {unit!r} in {value!r}")
        total += float(number) * TIME_UNITS_S[unit]
    return total
