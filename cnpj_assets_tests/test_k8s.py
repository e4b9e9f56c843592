"""The Kubernetes deployment, as far as it can be tested without docker, helm or a cluster:
the image's build context and Dockerfile, the lockstep pins, the Helm values (against
the chart's schema when the chart is at hand, and against deploy/dagster.yaml always),
and the definitions loading with the pod-per-step executor selected."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnpj_assets.specs import TABLES
from cnpj_assets_tests.dagster_processes import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
HELM_VALUES = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
CHART_VARIABLE = "DAGSTER_HELM_CHART"


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker reads it: `*` within a path segment, `**` across."""
    regex = ""
    for segment in pattern.strip("/").split("/"):
        if segment == "**":
            regex += "(?:[^/]+/)*"
        else:
            regex += re.escape(segment).replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + "/"
    return re.compile(regex.removesuffix("/"))


def _rules(root: Path) -> list[tuple[bool, re.Pattern[str]]]:
    lines = (root / ".dockerignore").read_text().splitlines()
    rules = []
    for line in (line.strip() for line in lines):
        if line and not line.startswith("#"):
            keep = line.startswith("!")
            rules.append((keep, _pattern_regex(line.removeprefix("!"))))
    return rules


def _excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parents = [path] + [path.rsplit("/", n)[0] for n in range(1, path.count("/") + 1)]
    excluded = False
    for keep, regex in rules:
        if any(regex.fullmatch(p) for p in parents):
            excluded = not keep
    return excluded


def build_context(root: Path = PROJECT_ROOT) -> set[str]:
    """The files `docker build` sends from `root`, .dockerignore applied."""
    rules = _rules(root)
    sent = set()
    for folder, dirs, files in os.walk(root):
        relative = Path(folder).relative_to(root).as_posix()
        prefix = "" if relative == "." else relative + "/"
        dirs[:] = [d for d in dirs if d not in (".git", ".venv", "node_modules")]
        sent |= {prefix + f for f in files if not _excluded(prefix + f, rules)}
    return sent


def test_the_image_is_built_from_the_package_and_no_dev_files() -> None:
    sent = build_context()
    assert {"pyproject.toml", "setup.cfg", "README.md", "cnpj_assets/definitions.py"} <= sent
    assert "cnpj_assets/source/download.py" in sent
    leaked = [
        name
        for name in sent
        if not name.startswith("cnpj_assets/") or "__pycache__" in name or name.endswith(".pyc")
    ]
    assert sorted(leaked) == ["README.md", "pyproject.toml", "setup.cfg"]


def test_the_dockerfile_copies_only_the_context_and_installs_the_pinned_k8s_extra() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    sent = build_context()
    copied = [
        source
        for line in dockerfile.splitlines()
        if line.startswith("COPY ")
        for source in line.split()[1:-1]
    ]
    assert copied, "the Dockerfile copies nothing"
    for source in copied:
        assert source in sent or any(name.startswith(source + "/") for name in sent), source
    assert 'pip install ".[k8s]"' in dockerfile
    assert '"--location-name", "cnpj_assets"' in dockerfile


def _pins() -> dict[str, str]:
    requirements = PYPROJECT["project"]["dependencies"] + [
        r for extra in PYPROJECT["project"]["optional-dependencies"].values() for r in extra
    ]
    return dict(r.split("==", 1) for r in requirements if r.startswith("dagster") and "==" in r)


def test_dagster_and_its_integrations_are_pinned_in_lockstep() -> None:
    """Dagster 1.X.Y goes with its integrations at 0.(X+16).Y: pip left alone mixes them."""
    pins = _pins()
    major, minor, patch = pins["dagster"].split(".")
    integration = f"0.{int(minor) + 16}.{patch}"
    assert major == "1"
    assert pins["dagster-k8s"] == pins["dagster-postgres"] == integration
    for name, version in pins.items():
        assert version in (pins["dagster"], integration), f"{name}=={version}"
    assert HELM_VALUES["dagsterWebserver"]["image"]["tag"] == pins["dagster"]
    assert HELM_VALUES["dagsterDaemon"]["image"]["tag"] == pins["dagster"]
    assert f"--version {pins['dagster']}" in (DEPLOY / "helm" / "values.yaml").read_text()


def test_the_helm_values_keep_the_limits_of_the_single_machine_deployment() -> None:
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    concurrency = HELM_VALUES["concurrency"]
    assert concurrency["pools"]["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"]
    runs = instance["concurrency"]["runs"]
    assert concurrency["runs"]["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert concurrency["runs"]["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    monitoring = HELM_VALUES["dagsterDaemon"]["runMonitoring"]
    assert monitoring["enabled"] == instance["run_monitoring"]["enabled"]
    assert monitoring["startTimeoutSeconds"] == instance["run_monitoring"]["start_timeout_seconds"]
    retention = HELM_VALUES["retention"]
    assert retention["enabled"]
    for kind in ("sensor", "schedule"):
        expected = instance["retention"][kind]["purge_after_days"]
        found = retention[kind]["purgeAfterDays"]
        assert found == expected or {k: found[k] for k in expected} == expected
    (server,) = HELM_VALUES["dagsterWebserver"]["workspace"]["servers"]
    assert server["name"] == "cnpj_assets"
    (deployment,) = HELM_VALUES["dagster-user-deployments"]["deployments"]
    assert (server["host"], server["port"]) == (deployment["name"], deployment["port"])
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["CNPJ_EXECUTOR"] == "k8s"
    assert int(env["CNPJ_RUN_LOG_RETENTION_DAYS"]) > 0


def _merged(defaults: Any, overrides: Any) -> Any:
    """Helm's merge of a values file over the chart's: maps merge, anything else replaces."""
    if isinstance(defaults, dict) and isinstance(overrides, dict):
        return {**defaults, **{k: _merged(defaults.get(k), v) for k, v in overrides.items()}}
    return overrides


@pytest.fixture
def chart() -> Iterator[Path]:
    folder = os.environ.get(CHART_VARIABLE)
    if not folder or not (Path(folder) / "values.schema.json").is_file():
        pytest.skip(
            "the dagster Helm chart 1.13.27 is not available here (no helm, no network to its "
            f"repository); set {CHART_VARIABLE} to the folder of `helm pull dagster/dagster "
            "--version 1.13.27 --untar` to validate deploy/helm/values.yaml against its schema"
        )
    yield Path(folder)


def test_the_helm_values_match_the_charts_schema(chart: Path) -> None:
    import jsonschema
    import referencing

    schema = json.loads((chart / "values.schema.json").read_text())
    defaults = yaml.safe_load((chart / "values.yaml").read_text())

    def anything_remote(uri: str) -> referencing.Resource:
        """Kubernetes object schemas are fetched from the internet by helm; not checked here."""
        return referencing.Resource.from_contents(
            {}, default_specification=referencing.jsonschema.DRAFT7
        )

    registry = referencing.Registry(retrieve=anything_remote)
    validator = jsonschema.Draft7Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(_merged(defaults, HELM_VALUES)), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:20])


def test_the_definitions_load_with_the_pod_per_step_executor() -> None:
    pytest.importorskip(
        "dagster_k8s", reason="the k8s extra is not installed: pip install -e '.[k8s]'"
    )
    script = """
import json
from dagster_k8s.job import get_user_defined_k8s_config
from cnpj_assets.definitions import defs
from cnpj_assets.specs import TABLES
jobs = {name: defs.resolve_job_def(name) for name in ("load_release", "download_and_load_release")}
job = jobs["load_release"]
sizes = {
    node.name: get_user_defined_k8s_config(node.tags).container_config["resources"]
    for node in job.graph.nodes if node.name.removeprefix("cnpj__") in TABLES
}
print(json.dumps({"executors": {n: j.executor_def.name for n, j in jobs.items()}, "sizes": sizes}))
"""
    env = {**os.environ, "CNPJ_EXECUTOR": "k8s"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert loaded["executors"] == {"load_release": "k8s", "download_and_load_release": "k8s"}
    assert set(loaded["sizes"]) == {f"cnpj__{table}" for table in TABLES}
    for table, spec in TABLES.items():
        requests = loaded["sizes"][f"cnpj__{table}"]["requests"]
        assert requests["cpu"] == ("250m" if spec.is_lookup else "2"), table


def test_an_unknown_executor_is_a_clear_error() -> None:
    env = {**os.environ, "CNPJ_EXECUTOR": "celery"}
    done = subprocess.run(
        [sys.executable, "-c", "import cnpj_assets.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "CNPJ_EXECUTOR='celery': expected one of threads, k8s" in done.stderr


def test_the_api_runs_beside_dagster_from_the_project_image_ready_on_healthz() -> None:
    """deploy/helm/cnpj-api: the code location's image, `cnpj-assets serve` as its command
    (parsed by the CLI as the container would run it), readiness on /healthz, the
    database from a secret."""
    from cnpj_assets.cli import build_parser

    chart = DEPLOY / "helm" / "cnpj-api"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    (deployment,) = HELM_VALUES["dagster-user-deployments"]["deployments"]
    assert values["image"] == deployment["image"]
    command = [
        *values["command"],
        "--port",
        str(values["port"]),
        "--workers",
        str(values["workers"]),
    ]
    assert command[0] == "cnpj-assets"
    args = build_parser().parse_args(command[1:])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", values["port"])
    assert values["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert values["envSecrets"] and not any("DATABASE_URL" in e["name"] for e in values["env"])
    template = (chart / "templates" / "deployment.yaml").read_text()
    for key in ("command", "readinessProbe", "envSecrets", "port", "workers"):
        assert f".Values.{key}" in template
