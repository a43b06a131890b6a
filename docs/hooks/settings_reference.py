"""MkDocs hook: the configuration reference, made from the settings classes at every build.

``docs/configuration.md`` holds the lines ``<!-- settings-reference -->`` and
``<!-- /settings-reference -->``; this hook replaces them, and what stands between them (a
note for readers of the unbuilt file), with one table per settings class: each field's
flag, environment variable, type (with its bounds), default and description (the field's
docstring). The page is made from the code each time the site is built (``make lint`` runs
``mkdocs build --strict``), so it cannot drift from it, and a link to a setting that no
longer exists fails the build.

The settings classes are named once, in :data:`SECTIONS`: a moved or renamed class is a
one-line change there. ``tests/unit/test_docs.py`` checks that every settings class of
the project is listed.

Fields a class inherits unchanged from a class listed before it (the servers' common
settings, the drift and performance jobs' shared ones) are listed once, where they are
declared, and linked from the others.
"""

from __future__ import annotations

import html
import importlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files
    from mkdocs.structure.pages import Page

__all__ = ["END", "MARKER", "PAGE", "SECTIONS", "Section", "on_page_markdown", "reference"]

#: The page that holds the reference, and the lines between which it goes.
PAGE: Final = "configuration.md"
MARKER: Final = "<!-- settings-reference -->"
END: Final = "<!-- /settings-reference -->"

#: The repository root: the settings are imported from this tree, not an installed copy.
ROOT: Final = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Section:
    """One settings class on the page.

    ``anchor`` names the section (``#predictor``) and prefixes each field's anchor
    (``#predictor-model_uri``): other pages link to a setting with it.
    """

    anchor: str
    title: str
    commands: tuple[str, ...]
    settings: str  # "module:Class"

    def settings_class(self) -> type[BaseSettings]:
        """The class ``settings`` names, imported."""
        module, _, name = self.settings.partition(":")
        cls = getattr(importlib.import_module(module), name)
        if not (isinstance(cls, type) and issubclass(cls, BaseSettings)):
            raise TypeError(f"{self.settings} is not a pydantic-settings class")
        return cls


#: Every settings class of the project, in the order of the page.
SECTIONS: Final = (
    Section(
        "server",
        "Both servers",
        ("python -m predictor", "python -m transformer"),
        "common.core.settings:ServerSettings",
    ),
    Section(
        "predictor", "Predictor", ("python -m predictor",), "predictor.settings:PredictorSettings"
    ),
    Section(
        "transformer",
        "Transformer",
        ("python -m transformer",),
        "transformer.settings:TransformerSettings",
    ),
    Section(
        "job",
        "The drift and performance jobs",
        ("python -m monitoring drift", "python -m monitoring performance"),
        "monitoring.settings:JobSettings",
    ),
    Section(
        "drift", "Drift job", ("python -m monitoring drift",), "monitoring.settings:DriftSettings"
    ),
    Section(
        "performance",
        "Performance job",
        ("python -m monitoring performance",),
        "monitoring.settings:PerformanceSettings",
    ),
    Section(
        "simulate",
        "Traffic simulator",
        ("python -m monitoring simulate",),
        "monitoring.settings:SimulateSettings",
    ),
    Section(
        "evaluate",
        "Drift evaluation",
        ("python -m monitoring.evaluate",),
        "monitoring.settings:EvaluateSettings",
    ),
    Section("training", "Training", ("python -m training",), "training.settings:TrainingSettings"),
)


def on_page_markdown(markdown: str, *, page: Page, config: MkDocsConfig, files: Files) -> str:
    """MkDocs event: on :data:`PAGE`, the reference in place of :data:`MARKER` to :data:`END`."""
    if page.file.src_uri != PAGE:
        return markdown
    before, marker, rest = markdown.partition(MARKER)
    _, end, after = rest.partition(END)
    if not (marker and end) or MARKER in after or END in before:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{PAGE} must hold the lines {MARKER} and then {END}, once each")
    return before + reference() + after


def reference(sections: tuple[Section, ...] = SECTIONS) -> str:
    """The reference as Markdown: one heading and table per section."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    classes = [section.settings_class() for section in sections]
    out: list[str] = []
    for index, (section, cls) in enumerate(zip(sections, classes, strict=True)):
        earlier = list(zip(sections[:index], classes[:index], strict=True))
        out += _section(section, cls, earlier, list(zip(sections, classes, strict=True)))
    return "\n".join(out)


def _section(
    section: Section,
    cls: type[BaseSettings],
    earlier: list[tuple[Section, type[BaseSettings]]],
    every: list[tuple[Section, type[BaseSettings]]],
) -> list[str]:
    """One section's lines: heading, summary, its own fields' table, what it shares."""
    prefixes = _env_prefixes(cls, every)
    summary = (cls.__doc__ or "").strip().splitlines()[0]
    commands = " and ".join(f"`{command}`" for command in section.commands)
    variables = " and ".join(f"`{prefix}*`" for prefix in prefixes)
    lines = [
        f"### {section.title} {{#{section.anchor}}}",
        "",
        f"{_text(summary)} {commands}; environment variables {variables}.",
        "",
    ]
    own: list[tuple[str, FieldInfo]] = []
    shared: dict[str, list[str]] = {}  # anchor of the section declaring it -> field names
    for name, field in cls.model_fields.items():
        home = _declared_in(name, field, earlier)
        if home is None:
            own.append((name, field))
        else:
            shared.setdefault(home.anchor, []).append(name)
    if own:
        lines += [
            "| flag | environment variable | type | default | description |",
            "|---|---|---|---|---|",
        ]
        lines += [_row(section, name, field, prefixes) for name, field in own]
        lines.append("")
    for anchor, names in shared.items():
        home = next(s for s, _ in earlier if s.anchor == anchor)
        home_fields = next(c for s, c in earlier if s is home).model_fields
        if len(names) == len(home_fields):
            lines.append(f"It also takes every setting of [{home.title.lower()}](#{home.anchor}).")
        else:
            flags = ", ".join(f"[`--{n}`](#{anchor}-{n})" for n in names)
            lines.append(f"It also takes, as [{home.title.lower()}](#{anchor}) do, {flags}.")
        lines.append("")
    lines += _tolerated(cls, earlier)
    return lines


def _row(section: Section, name: str, field: FieldInfo, prefixes: list[str]) -> str:
    env = ", ".join(f"`{prefix}{name.upper()}`" for prefix in prefixes)
    cells = [
        f'<a id="{section.anchor}-{name}"></a>`--{name}`',
        env,
        _type(field),
        _default(field),
        _text(field.description or ""),
    ]
    return "| " + " | ".join(cells) + " |"


def _declared_in(
    name: str, field: FieldInfo, earlier: list[tuple[Section, type[BaseSettings]]]
) -> Section | None:
    """The earlier section whose class declares this field the same way, if any."""
    for section, other in earlier:
        theirs = other.model_fields.get(name)
        if theirs is not None and _same(field, theirs):
            return section
    return None


def _same(a: FieldInfo, b: FieldInfo) -> bool:
    """Whether two fields would print the same row (but for the anchor)."""
    return (a.annotation, a.default, a.description, a.metadata) == (
        b.annotation,
        b.default,
        b.description,
        b.metadata,
    )


def _env_prefixes(
    cls: type[BaseSettings], every: list[tuple[Section, type[BaseSettings]]]
) -> list[str]:
    """The class's own prefix; for a base without one, those of its subclasses listed."""
    own = cls.model_config.get("env_prefix") or ""
    if own:
        return [own]
    subclasses = {
        c.model_config.get("env_prefix") or ""
        for _, c in every
        if c is not cls and issubclass(c, cls)
    }
    return sorted(p for p in subclasses if p) or [""]


def _tolerated(
    cls: type[BaseSettings], earlier: list[tuple[Section, type[BaseSettings]]]
) -> list[str]:
    """A line naming the flags the part accepts and ignores (KServe passes them)."""
    flags: frozenset[str] = getattr(cls, "tolerated_flags", frozenset())
    inherited = frozenset[str]().union(
        *(getattr(c, "tolerated_flags", frozenset()) for _, c in earlier if issubclass(cls, c))
    )
    extra = sorted(flags - inherited)
    if not extra:
        return []
    listed = ", ".join(f"`--{flag}`" for flag in extra)
    if inherited:
        return [f"It also accepts, and ignores, {listed}.", ""]
    return [f"Accepted and ignored, as KServe may pass them: {listed}.", ""]


def _type(field: FieldInfo) -> str:
    """The field's type in words, with its bounds: ``integer, ≥ 1, ≤ 65535``."""
    annotation: Any = field.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in get_args(annotation))
    name = _TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))
    bounds = [
        f"{symbol} {_number(getattr(m, attr))}"
        for m in field.metadata
        for attr, symbol in _BOUNDS
        if getattr(m, attr, None) is not None
    ]
    return ", ".join([name, *bounds])


_TYPE_NAMES: Final[dict[Any, str]] = {
    str: "text",
    int: "integer",
    float: "number",
    bool: "`true` or `false`",
    Path: "path",
}
_BOUNDS: Final = (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤"))


def _default(field: FieldInfo) -> str:
    """The default as the flag takes it; ``(required)`` or ``unset`` when there is none."""
    value = field.default
    if value is PydanticUndefined:
        return "(required)"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return "empty"
    if isinstance(value, float | int):
        return f"`{_number(value)}`"
    return f"`{value}`"


def _number(value: float) -> str:
    """``300.0`` as ``300``, ``0.05`` as ``0.05``: as a person would type the flag."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _text(text: str) -> str:
    """A docstring as one line of Markdown table text, nothing in it taken as markup."""
    flat = " ".join(text.split())
    flat = html.escape(flat, quote=False)
    for char in "\\`*_|[]":
        flat = flat.replace(char, "\\" + char)
    return flat
