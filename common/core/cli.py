"""Command lines built from a settings class: one flag per field, env fallbacks.

Each part declares its configuration once, as a pydantic-settings class whose
fields carry docstrings. :func:`parse_settings` reads it with pydantic-settings'
own command-line source, with the same names (``--model_uri`` for ``model_uri``,
read from ``PREDICTOR_MODEL_URI`` when the flag is absent), so code, manifests,
chart values and the docs use one vocabulary.

What pydantic-settings does not do by itself, and this module adds:

- tolerate a known list of flags another tool passes (KServe appends its own to
  custom containers) while any other unknown flag stays an error: they are
  declared, hidden, on the root parser handed to pydantic-settings;
- answer an invalid value as a usage error (exit status 2) naming the flag and
  the value, rather than with a ``ValidationError`` traceback.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, CliSettingsSource

from common.core.errors import validation_problems

__all__ = ["parse_settings"]

log = logging.getLogger(__name__)

S = TypeVar("S", bound=BaseSettings)

_IGNORED = "_ignored_"


def parse_settings(
    settings_cls: type[S],
    argv: Sequence[str] | None,
    *,
    prog: str,
    tolerated: frozenset[str] | None = None,
) -> S:
    """Parse ``argv`` into ``settings_cls``; flags win over environment variables.

    Parameters
    ----------
    settings_cls : type of BaseSettings
        The part's settings; its ``env_prefix`` names the environment variables.
    argv : sequence of str or None
        Arguments without the program name; ``None`` reads ``sys.argv``.
    prog : str
        Program name shown in help and errors.
    tolerated : frozenset of str, optional
        Flags another tool may pass that this part ignores (KServe appends its
        own to custom containers); any other unknown flag is an error. Defaults
        to the class's ``tolerated_flags``, if it declares them.

    Raises
    ------
    SystemExit
        With status 2 and a message naming the flag, on an unknown flag or an
        invalid value.
    """
    ignorable: frozenset[str] = (
        getattr(settings_cls, "tolerated_flags", frozenset()) if tolerated is None else tolerated
    )
    parser = argparse.ArgumentParser(
        prog=prog, description=settings_cls.__doc__, allow_abbrev=False
    )
    for flag in sorted(ignorable):
        parser.add_argument(f"--{flag}", dest=f"{_IGNORED}{flag}", help=argparse.SUPPRESS)
    source: CliSettingsSource[S] = CliSettingsSource(
        settings_cls, root_parser=parser, cli_show_env_vars=True
    )
    source = source(args=True if argv is None else list(argv))
    ignored = sorted(
        name.removeprefix(_IGNORED)
        for name, value in source.env_vars.items()
        if name.startswith(_IGNORED) and value is not None
    )
    if ignored:
        log.info("ignoring flags this part does not use: %s", ", ".join(ignored))
    try:
        return settings_cls(_cli_settings_source=source)
    except ValidationError as exc:
        parser.error(validation_problems(exc.errors(include_url=False), flags=True))
