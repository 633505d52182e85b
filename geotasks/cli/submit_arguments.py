"""What follows ``geotasks submit ACTOR``: the actor's arguments, and ``submit``'s own options
wherever they stand (``--wait``, ``--timeout S``, ``-o FILE``), as users of ``celery call`` and
``dramatiq`` expect."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SubmitArguments:
    """What follows ``geotasks submit ACTOR`` on the command line."""

    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    wait: bool = False
    timeout_s: float | None = None
    output: str | None = None


def parse_value(text: str) -> Any:
    """Read an argument as JSON (``50``, ``true``, ``[1, 2]``), else as the string it is."""
    import orjson

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def parse_submit_arguments(tokens: Sequence[str]) -> SubmitArguments:
    """Split ``parcels --distance-m 50 --wait -o out.geojson`` into the actor's arguments and
    the command's own options, wherever these stand.

    The command's options are ``--wait``, ``--timeout S`` and ``-o``/``--output FILE`` (also
    ``--timeout=S``, ``--output=FILE``, ``-oFILE``). Any other ``--name value`` (or
    ``--name=value``) is a keyword argument of the actor, dashes read as underscores; anything
    else is a positional argument. After ``--`` every option is the actor's: that is how an actor
    parameter named ``wait``, ``timeout`` or ``output`` is reached (``-- --timeout 30``). Values
    are JSON when they parse as JSON: quote a name that looks like a number (``'"2056"'``) or
    a positional text that starts with ``--`` (``'"--x"'``).

    Raises:
      InputError: when an option lacks its value, or ``--timeout`` is not a number.
    """
    from ..errors import InputError

    parsed = SubmitArguments()
    remaining = list(tokens)
    actor_only = False
    while remaining:
        token = remaining.pop(0)
        if token == "--" and not actor_only:
            actor_only = True
            continue
        if not actor_only and token.startswith("-o") and not token.startswith("--"):
            parsed.output = token[2:] or _option_value("-o", remaining)
            continue
        if not token.startswith("--") or token == "--":
            parsed.args.append(parse_value(token))
            continue
        name, has_value, value = token[2:].partition("=")
        if not actor_only and name == "wait" and not has_value:
            parsed.wait = True
            continue
        if not has_value:
            value = _option_value(f"--{name}", remaining)
        if not actor_only and name == "timeout":
            try:
                parsed.timeout_s = float(value)
            except ValueError:
                raise InputError(f"--timeout needs a number of seconds, not {value!r}") from None
        elif not actor_only and name == "output":
            parsed.output = value
        else:
            parsed.kwargs[name.replace("-", "_")] = parse_value(value)
    return parsed


def _option_value(option: str, remaining: list[str]) -> str:
    """Take the value that follows ``option`` off ``remaining``.

    Raises:
      InputError: when nothing follows.
    """
    from ..errors import InputError

    if not remaining:
        raise InputError(f"{option} needs a value")
    return remaining.pop(0)
