"""Command lines built from a settings class: one flag per field, env fallbacks.

Each part declares its configuration once, as a pydantic-settings class whose
fields carry docstrings. :func:`parse_settings` turns that class into an
argparse parser with the same names (``--model_uri`` for ``model_uri``, read from
``PREDICTOR_MODEL_URI`` when the flag is absent), so code, manifests, chart values
and the README use one vocabulary.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

__all__ = ["parse_settings"]

log = logging.getLogger(__name__)

S = TypeVar("S", bound=BaseSettings)


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
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    parser = argparse.ArgumentParser(
        prog=prog, description=settings_cls.__doc__, allow_abbrev=False
    )
    for name, field in settings_cls.model_fields.items():
        default = "required" if field.is_required() else f"default {field.default!r}"
        parser.add_argument(
            f"--{name}",
            dest=name,
            default=argparse.SUPPRESS,
            metavar=name.upper(),
            help=f"{field.description or ''} (env {prefix}{name.upper()}; {default})",
        )
    for flag in sorted(ignorable):
        parser.add_argument(
            f"--{flag}", dest=f"_ignored_{flag}", default=None, help=argparse.SUPPRESS
        )
    namespace = parser.parse_args(argv)
    given = {k: v for k, v in vars(namespace).items() if not k.startswith("_ignored_")}
    ignored = sorted(
        k.removeprefix("_ignored_")
        for k, v in vars(namespace).items()
        if k.startswith("_ignored_") and v is not None
    )
    if ignored:
        log.info("ignoring flags this part does not use: %s", ", ".join(ignored))
    try:
        return settings_cls(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'.'.join(map(str, e['loc']))}={e.get('input')!r}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        parser.error(problems)
