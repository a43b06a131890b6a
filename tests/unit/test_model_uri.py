"""``models:/`` URIs: the one parser (good and bad URIs) and the one resolver, against a
stand-in registry that answers as MLflow's does. tests/integration/test_model_uri.py holds
the predictor and the monitoring jobs to the same versions on a real MLflow server."""

from __future__ import annotations

import subprocess
import sys
import warnings
from dataclasses import dataclass, field

import pytest
from pydantic_settings import BaseSettings

from common.core.cli import parse_settings
from common.core.model_uri import (
    STAGES,
    InvalidModelUri,
    ModelUri,
    NoSuchVersion,
    RegistryVersion,
    parse_model_uri,
    resolve_model_uri,
)
from monitoring.settings import DriftSettings
from predictor.settings import PredictorSettings


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("models:/m/3", ModelUri("m", "version", "3")),
        ("models:/m/003", ModelUri("m", "version", "3")),
        ("models:/m@production", ModelUri("m", "alias", "production")),
        ("models:/m@Champion_2-b", ModelUri("m", "alias", "Champion_2-b")),
        ("models:/m/Production", ModelUri("m", "stage", "Production")),
        ("models:/m/production", ModelUri("m", "stage", "Production")),
        ("models:/m/STAGING", ModelUri("m", "stage", "Staging")),
        ("models:/m/archived", ModelUri("m", "stage", "Archived")),
        ("models:/m/none", ModelUri("m", "stage", "None")),
        ("models:/m/latest", ModelUri("m", "latest", "latest")),
        ("models:/m/Latest", ModelUri("m", "latest", "latest")),
        ("models:/m@latest", ModelUri("m", "latest", "latest")),  # MLflow reserves the alias
        (
            "models:/sales-quantity-classifier.v2/1",
            ModelUri("sales-quantity-classifier.v2", "version", "1"),
        ),
        ("models:/a@b/3", ModelUri("a@b", "version", "3")),  # split as MLflow splits it
    ],
)
def test_a_models_uri_parses_as_mlflow_reads_it(uri: str, parsed: ModelUri) -> None:
    assert parse_model_uri(uri) == parsed
    assert parse_model_uri(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("s3://bucket/model", "not a models:/ URI"),
        ("models:m/3", "not a models:/ URI"),
        ("", "not a models:/ URI"),
        ("models:/", "no model name"),
        ("models:/m", "no version, alias, stage or latest after the name"),
        ("models:/m/", "'' is neither a version number nor a stage"),
        ("models:/m/Prod", "'Prod' is neither a version number nor a stage"),
        ("models:/m/3 ", "'3 ' is neither a version number nor a stage"),
        ("models:/m/-1", "'-1' is neither a version number nor a stage"),
        ("models:/m/1/2", "too many /"),
        ("models://m/3", "too many /"),
        ("models:/m@", "the alias '' may hold only letters, digits, _ and -"),
        ("models:/m@prod uction", "the alias 'prod uction' may hold only"),
        ("models:/m@a.b", "the alias 'a.b' may hold only"),
        ("models:/@production", "no model name"),
        ("models:/ /3", "no model name"),
        ("models:/a:b/1", "the name 'a:b' holds a ':', which MLflow forbids"),
    ],
)
def test_a_malformed_uri_is_refused_naming_the_problem_and_what_is_allowed(
    uri: str, problem: str
) -> None:
    with pytest.raises(InvalidModelUri) as info:
        parse_model_uri(uri)
    message = str(info.value)
    assert message.startswith(f"model_uri={uri!r} is invalid: {problem}")
    assert message.endswith(
        "expected models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/STAGE "
        "(None, Staging, Production, Archived) or models:/NAME/latest"
    )


def test_a_pinned_uri_is_built_by_the_parser_and_only_for_a_version_number() -> None:
    assert str(ModelUri.of_version("m", 4)) == "models:/m/4"
    assert ModelUri.of_version("m", "4") == parse_model_uri("models:/m/4")
    with pytest.raises(InvalidModelUri, match="'Production' is not a version number"):
        ModelUri.of_version("m", "Production")


@pytest.mark.parametrize("settings", [PredictorSettings, DriftSettings])
def test_a_malformed_model_uri_flag_is_a_usage_error_in_every_part(
    settings: type[BaseSettings], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--model_uri", "models:/m/Prod", "--current", "c", "--output", "o"]
    if settings is PredictorSettings:
        argv = argv[:2]
    with pytest.raises(SystemExit) as info:
        parse_settings(settings, argv, prog="p")
    assert info.value.code == 2
    assert "model_uri='models:/m/Prod' is invalid: 'Prod' is neither" in capsys.readouterr().err


@dataclass
class _Version:
    name: str
    version: str
    current_stage: str
    run_id: str


@dataclass
class StandInRegistry:
    """One registered model, answering the three calls the resolver makes as MLflow does."""

    stages: dict[int, str] = field(default_factory=dict)  # version -> stage
    aliases: dict[str, int] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def _version(self, number: int) -> _Version:
        return _Version("m", str(number), self.stages[number], f"run-{number}")

    def get_model_version(self, name: str, version: str) -> _Version:
        self.calls.append(f"version {version}")
        if int(version) not in self.stages:
            raise LookupError(f"Model Version (name={name}, version={version}) not found")
        return self._version(int(version))

    def get_model_version_by_alias(self, name: str, alias: str) -> _Version:
        self.calls.append(f"alias {alias}")
        if alias not in self.aliases:
            raise LookupError(f"Registered model alias {alias} not found.")
        return self._version(self.aliases[alias])

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[_Version]:
        # As MlflowClient: deprecated, and the newest version of each stage asked for.
        warnings.warn(
            "``mlflow.tracking.client.MlflowClient.get_latest_versions`` is deprecated",
            FutureWarning,
            stacklevel=2,
        )
        self.calls.append(f"latest {stages}")
        assert stages is None or set(stages) <= set(STAGES), (
            "stages are passed as MLflow spells them"
        )
        newest: dict[str, int] = {}
        for number, stage in self.stages.items():
            if stages is None or stage in stages:
                newest[stage] = max(number, newest.get(stage, 0))
        return [self._version(n) for n in newest.values()]


@pytest.fixture()
def registry() -> StandInRegistry:
    # The alias moved to version 2 while the Production stage stayed on version 1.
    return StandInRegistry(
        stages={1: "Production", 2: "None", 3: "Staging", 4: "None", 5: "Archived", 6: "None"},
        aliases={"production": 2},
    )


@pytest.mark.parametrize(
    ("uri", "version"),
    [
        ("models:/m/4", "4"),
        ("models:/m@production", "2"),
        ("models:/m/Production", "1"),
        ("models:/m/production", "1"),
        ("models:/m/Staging", "3"),
        ("models:/m/None", "6"),
        ("models:/m/latest", "6"),
        ("models:/m@latest", "6"),
    ],
)
def test_each_kind_of_uri_resolves_to_the_version_mlflow_would_serve(
    registry: StandInRegistry, uri: str, version: str
) -> None:
    assert resolve_model_uri(uri, registry) == RegistryVersion("m", version, f"run-{version}")
    assert resolve_model_uri(parse_model_uri(uri), registry).version == version


def test_a_stage_and_an_alias_of_one_word_are_different_versions(registry: StandInRegistry) -> None:
    by_alias = resolve_model_uri("models:/m@production", registry)
    by_stage = resolve_model_uri("models:/m/Production", registry)
    assert (by_alias.version, by_stage.version) == ("2", "1")
    assert registry.calls == ["alias production", "latest ['Production']"]


def test_an_empty_stage_or_model_is_no_such_version(registry: StandInRegistry) -> None:
    registry.stages.pop(5)
    with pytest.raises(NoSuchVersion, match="models:/m/Archived: no version of 'm' in stage"):
        resolve_model_uri("models:/m/archived", registry)
    with pytest.raises(NoSuchVersion, match="models:/m/latest: no version of 'm'$"):
        resolve_model_uri("models:/m/latest", StandInRegistry())


def test_what_the_registry_refuses_reaches_the_caller_as_it_was_raised(
    registry: StandInRegistry,
) -> None:
    with pytest.raises(LookupError, match="alias nightly not found"):
        resolve_model_uri("models:/m@nightly", registry)
    with pytest.raises(LookupError, match="version=9"):
        resolve_model_uri("models:/m/9", registry)


def test_a_malformed_string_is_refused_before_the_registry_is_asked(
    registry: StandInRegistry,
) -> None:
    with pytest.raises(InvalidModelUri):
        resolve_model_uri("models:/m/Prod", registry)
    assert registry.calls == []


def test_the_core_module_imports_no_mlflow_the_caller_hands_it_a_client() -> None:
    script = (
        "import sys, common.core.model_uri\n"
        "print(' '.join(sorted({m.partition('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(done.stdout.split())
    assert loaded.isdisjoint({"mlflow", "kserve", "fastapi", "pandas"}), loaded
