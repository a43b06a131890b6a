"""The deploy walk of the docs, as a user runs it: every name its commands use exists.

The walk is the fenced ``bash`` blocks of :data:`WALK_DOC`. Its ``helm install`` is rendered
with exactly the values and release name it gives; then every other command of the walk must
name what that rendering made: the Secret it creates is the one the pods reference, ``helm
test`` names the release, the in-cluster ``curl`` names the transformer's Service and the
served model, ``kubectl create job --from`` a CronJob, and ``python -m rollout`` (with its
default ``--name`` when the walk gives none) finds the InferenceService, which is applied to the
real API server first. A walk whose Secret, release, Service or ``--name`` disagree fails here.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from rollout.__main__ import main as rollout_main
from tests.deploy.cluster import Cluster
from tests.deploy.manifests import CHART, ROOT, Obj, one, pod_specs

pytestmark = pytest.mark.deploy

#: The page that holds the deploy walk (its fenced ``bash`` blocks).
WALK_DOC = "docs/deploying.md"
#: Rollout actions that change the InferenceService: run with --dry-run here.
ROLLOUT_CHANGES = {"start", "shift", "promote", "rollback"}
#: The InferenceService `python -m rollout` acts on without --name (its documented default).
ROLLOUT_DEFAULT_NAME = "sales-quantity-classifier"


def bash_commands(markdown: str) -> Iterator[list[str]]:
    """Each command of the fenced ``bash`` blocks, split as the shell would (comments and
    line continuations removed)."""
    for block in re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.S | re.M):
        joined = re.sub(r"\\\n", " ", block)
        for line in joined.splitlines():
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
                words = words[1:]  # VAR=value before the command
            if words:
                yield words


def _option(words: list[str], *names: str) -> str | None:
    """The value of the last ``--name value`` or ``--name=value`` among ``words``."""
    found = None
    for i, word in enumerate(words):
        for name in names:
            if word == name and i + 1 < len(words):
                found = words[i + 1]
            elif word.startswith(name + "="):
                found = word.split("=", 1)[1]
    return found


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


@dataclass
class Walk:
    """What the walk's commands name."""

    release: str = ""
    namespace: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)
    helm_tests: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    cronjobs: list[str] = field(default_factory=list)
    isvc_gets: list[str] = field(default_factory=list)
    rollouts: list[list[str]] = field(default_factory=list)


def read_walk(markdown: str) -> Walk:
    """What the walk's commands name. Its first ``helm install`` (or ``upgrade --install``)
    gives the release, namespace and values; a later ``helm upgrade`` must name the same."""
    walk = Walk()
    for words in bash_commands(markdown):
        program = Path(words[0]).name
        walk.urls += [w for w in words if re.match(r"https?://[^/]*\.svc\.cluster\.local", w)]
        if program == "helm" and words[1:2] in (["install"], ["upgrade"]):
            release, chart = _positional(words[2:])[:2]
            namespace = _option(words, "-n", "--namespace") or "default"
            assert (ROOT / chart).resolve() == CHART, f"the walk installs {chart}, not {CHART}"
            if not walk.release:
                walk.release, walk.namespace = release, namespace
                walk.values = _helm_args(words[2:])
            else:
                assert (release, namespace) == (walk.release, walk.namespace), words
        elif program == "helm" and words[1:2] == ["test"]:
            walk.helm_tests.append(words[2])
        elif program == "kubectl" and "secret" in words and "generic" in words:
            walk.secrets.add(words[words.index("generic") + 1])
        elif program == "kubectl" and "job" in words and _option(words, "--from"):
            walk.cronjobs.append(str(_option(words, "--from")).removeprefix("cronjob/"))
        elif program == "kubectl" and _option(words, "-k", "--kustomize"):
            overlay = ROOT / str(_option(words, "-k", "--kustomize"))
            assert (overlay / "kustomization.yaml").exists(), f"no overlay at {overlay}"
        elif program == "kubectl" and words[1:] and "get" in words:
            kinds = {"inferenceservice", "inferenceservices", "isvc"}
            at = [i for i, w in enumerate(words) if w in kinds]
            if at and at[0] + 1 < len(words) and not words[at[0] + 1].startswith("-"):
                walk.isvc_gets.append(words[at[0] + 1])
        elif program.startswith("python") and words[1:3] == ["-m", "rollout"]:
            walk.rollouts.append(words[3:])
    assert walk.release, "the walk never installs the chart"
    return walk


#: helm options followed by a value (the rest are flags).
HELM_VALUED = {"-n", "--namespace", "--set", "--set-string", "--set-json", "--set-file"}
HELM_VALUED |= {"-f", "--values", "--version", "--timeout", "--kube-context"}


def _positional(words: list[str]) -> list[str]:
    """``words`` without the options and their values: e.g. [--install,] RELEASE, CHART."""
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in HELM_VALUED:
            skip = True
        elif not word.startswith("-"):
            kept.append(word)
    return kept


def _helm_args(words: list[str]) -> dict[str, Any]:
    """The values of ``--set``, ``--set-string`` and ``-f`` options, merged in order."""
    values: dict[str, Any] = {}
    for i, word in enumerate(words[:-1]):
        following = words[i + 1]
        if word == "--set":
            _merge(values, helm.parse_set_string(following))
        elif word == "--set-string":
            _merge(values, helm.parse_set_string_values(following))
        elif word in ("-f", "--values"):
            _merge(values, yaml.safe_load((ROOT / following).read_text()) or {})
    return values


def _rendered(walk: Walk) -> list[Obj]:
    chart = helm.Chart.load(CHART)
    rendered = chart.render(walk.values, name=walk.release, namespace=walk.namespace)
    return [
        d
        for path, text in sorted(rendered.items())
        if path.endswith(".yaml")
        for d in yaml.safe_load_all(text)
        if d
    ]


def _secret_names(objects: list[Obj]) -> set[str]:
    names = set()
    for obj in objects:
        for _, pod in pod_specs(obj):
            for container in pod["containers"]:
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        names.add(ref["name"])
                for source in container.get("envFrom", []):
                    if "secretRef" in source:
                        names.add(source["secretRef"]["name"])
    return names


def name_problems(walk: Walk, objects: list[Obj]) -> list[str]:
    """Where a command of the walk names something the rendering did not make."""
    problems = []
    isvc = one(objects, "InferenceService")["metadata"]["name"]
    model = walk.values.get("modelName", "sales-quantity-classifier")
    referenced = _secret_names(objects)
    if referenced != walk.secrets:
        problems.append(
            f"the walk creates Secret(s) {sorted(walk.secrets)}, the pods read {sorted(referenced)}"
        )
    if set(walk.helm_tests) != {walk.release}:
        problems.append(f"helm test {walk.helm_tests}, but the release is {walk.release}")
    services = {
        f"{isvc}-{c}.{walk.namespace}.svc.cluster.local" for c in ("transformer", "predictor")
    }
    paths = {f"v2/models/{model}/infer", f"v1/models/{model}:predict"}
    if not walk.urls:
        problems.append("the walk calls nothing inside the cluster")
    for url in walk.urls:
        host, _, path = url.split("://", 1)[1].partition("/")
        if host not in services or path not in paths:
            problems.append(
                f"curl {url}: the Services are {sorted(services)}, the paths {sorted(paths)}"
            )
    cronjobs = {o["metadata"]["name"] for o in objects if o["kind"] == "CronJob"}
    for name in walk.cronjobs:
        if name not in cronjobs:
            problems.append(
                f"kubectl create job --from=cronjob/{name}: the CronJobs are {sorted(cronjobs)}"
            )
    for name in walk.isvc_gets:
        if name != isvc:
            problems.append(f"kubectl get inferenceservice {name}: it is {isvc}")
    for args in walk.rollouts:
        name = _option(args, "--name") or ROLLOUT_DEFAULT_NAME
        if name != isvc:
            problems.append(f"python -m rollout {' '.join(args)} acts on {name}, not {isvc}")
    registry = walk.values.get("image", {}).get("registry")
    images = [c["image"] for o in objects for _, p in pod_specs(o) for c in p["containers"]]
    foreign = [i for i in images if not registry or not i.startswith(f"{registry}/")]
    if foreign:
        problems.append(f"images not from the walk's image.registry ({registry!r}): {foreign}")
    return problems


@pytest.fixture(scope="module")
def walk() -> Walk:
    page = ROOT / WALK_DOC
    if not page.exists():
        pytest.skip(f"{WALK_DOC} (the deploy walk) is not written yet")
    return read_walk(page.read_text())


def test_every_name_the_walk_uses_is_one_the_chart_rendered(walk: Walk) -> None:
    objects = _rendered(walk)
    assert walk.secrets, "the walk creates no Secret for the MLflow credentials"
    assert walk.rollouts and walk.cronjobs, "the walk never runs python -m rollout or a job"
    assert name_problems(walk, objects) == []


#: The README's Helm path before issue 19 (with the version pin the chart now requires):
#: Secret, release, curl and rollout disagree.
BROKEN_WALK = """
```bash
kubectl -n ml create secret generic sales-quantity-classifier-mlflow \\
  --from-literal=MLFLOW_TRACKING_USERNAME=... --from-literal=MLFLOW_TRACKING_PASSWORD=...
helm install sqc helm/sales-quantity-classifier -n ml \\
  --set deploymentMode=Knative --set mlflow.trackingUri=http://mlflow.mlflow:5000 \\
  --set predictor.image.repository=REGISTRY/sales-quantity-classifier-predictor \\
  --set predictor.modelVersion=4
helm test sqc -n ml
curl -s http://sales-quantity-classifier-transformer.ml.svc.cluster.local/v1/models/sales-quantity-classifier:predict
python -m rollout start 4 --percent 10 -n ml
kubectl -n ml create job drift-now --from=cronjob/sales-quantity-classifier-drift
```
"""


def test_a_walk_whose_names_disagree_is_caught() -> None:
    walk = read_walk(BROKEN_WALK)
    assert (walk.release, walk.namespace, walk.secrets) == (
        "sqc",
        "ml",
        {"sales-quantity-classifier-mlflow"},
    )
    problems = "\n".join(name_problems(walk, _rendered(walk)))
    assert "Secret(s) ['sales-quantity-classifier-mlflow'], the pods read []" in problems
    assert "curl http://sales-quantity-classifier-transformer.ml." in problems
    assert "acts on sales-quantity-classifier, not sqc-sales-quantity-classifier" in problems
    assert "cronjob/sales-quantity-classifier-drift" in problems
    assert "images not from the walk's image.registry (None)" in problems


def test_rollout_finds_the_inferenceservice_the_walk_installed(
    walk: Walk, cluster: Cluster, namespace: str, capsys: Any
) -> None:
    isvc = one(_rendered(walk), "InferenceService")
    isvc["metadata"]["namespace"] = namespace  # the walk's namespace, here a fresh one
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(isvc))
    assert walk.rollouts, "the walk never runs python -m rollout"
    for args in walk.rollouts:
        args = _in_namespace(args, namespace) + ["--kubeconfig", str(cluster.kubeconfig)]
        if args[0] in ROLLOUT_CHANGES:
            args.append("--dry-run")
        code = rollout_main(args)
        out, err = capsys.readouterr()
        assert "not found" not in err, (args, err)
        if args[0] == "status":
            assert code == 0, err
            assert yaml.safe_load(out)["name"] == isvc["metadata"]["name"]


def _in_namespace(args: list[str], namespace: str) -> list[str]:
    """``args`` with their namespace replaced by (or, absent, set to) ``namespace``."""
    kept, skip = [], False
    for word in args:
        if skip:
            skip = False
        elif word in ("-n", "--namespace"):
            skip = True
        elif not word.startswith("--namespace="):
            kept.append(word)
    return [*kept, "-n", namespace]
