"""The command line as a user meets it: help with defaults, Dagster's own CLI on the
project's instance after one `eval`, and the embedded server seen and stopped.

The Dagster CLI test runs in a fresh CNPJ_HOME with no CNPJ_DATABASE_URL, so every
command starts or finds the embedded server there, as on a user's machine; the test
stops that server itself (with `cnpj-assets server stop`, and by its pid if that fails).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml

from cnpj_assets.cli import build_parser, main
from cnpj_assets.declared_runs import location_origin
from cnpj_assets.instance import CODE_LOCATION, WORKSPACE_YAML, get_instance
from cnpj_assets.postgres.control import NOT_RUNNING, embedded_server
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.snapshot import expected_zip_names
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.conftest import home_outside_pytest, stop_and_wait
from cnpj_assets_tests.webdav_server import FakeShare

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RELEASE = "2029-03"
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    ("command", "defaults"),
    [
        ("demo", ["(default: 300000)"]),
        ("ui", ["(default: 3000)"]),
        ("fake-release", ["(default: 10000)", "(default: 0)"]),
        ("load", ["(default: {landing})"]),
        ("download", ["(default: {landing})"]),
    ],
)
def test_help_gives_every_default(
    command: str,
    defaults: list[str],
    capsys: pytest.CaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CNPJ_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps long paths at their hyphens
    with pytest.raises(SystemExit):
        main([command, "--help"])
    shown = capsys.readouterr().out
    for default in defaults:
        assert default.format(landing=tmp_path / "landing") in shown
    assert "default: None" not in shown


def test_load_and_download_default_to_the_landing_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CNPJ_LANDING_DIR", raising=False)
    monkeypatch.setenv("CNPJ_HOME", str(tmp_path))
    for command in ("load", "download"):
        args = build_parser().parse_args([command, "--release", RELEASE])
        assert args.landing == str(tmp_path / "landing")


def shell(command: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """One bash command in the project folder, as a user types it; fails with its output.

    The shell leads a session of its own, so a command past its time is stopped with
    everything it started (a Dagster run's processes keep its pipes open: killing bash
    alone left the test waiting on them) and the test fails naming it.
    """
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{command!r} ran past {timeout:.0f} s\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def checked(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, (
        f"{done.args}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def user_env() -> Iterator[dict[str, str]]:
    """A user's shell: a fresh CNPJ_HOME holding a small release, no database URL set."""
    with home_outside_pytest("cli") as home:
        write_release(release=RELEASE, rows=300, out_dir=home / "landing", seed=41)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CNPJ_", "DAGSTER_"))}
        env |= {"CNPJ_HOME": str(home), "PATH": f"{BIN}:{env['PATH']}", "PYTHONUNBUFFERED": "1"}
        try:
            yield env
        finally:
            server = embedded_server(home)
            if server.running and server.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    stop_and_wait(server.pid)


def test_the_dagster_cli_runs_on_the_projects_instance_after_one_eval(
    user_env: dict[str, str],
) -> None:
    env = 'eval "$(cnpj-assets env)" && '
    assert shell("cnpj-assets server status", user_env).returncode == NOT_RUNNING
    checked(shell(f"{env} cnpj-assets add-partition {RELEASE}", user_env))
    checked(
        shell(
            f"{env} dagster asset materialize -m cnpj_assets.definitions --select cnpj/cnaes --partition {RELEASE}",
            user_env,
        )
    )
    checked(shell(f"{env} dg launch --job load_release --partition {RELEASE}", user_env))
    runs = checked(
        shell(
            f"{env} python -c 'import dagster as dg; i = dg.DagsterInstance.get(); "
            'print(*sorted(r.job_name + ":" + r.status.value for r in i.get_runs()))\'',
            user_env,
        )
    )
    assert runs.split() == ["__ASSET_JOB:SUCCESS", "load_release:SUCCESS"]
    url = checked(shell("cnpj-assets db-url", user_env)).strip()
    with psycopg.connect(url) as connection:
        (loaded,) = connection.execute(
            "SELECT count(DISTINCT table_name) FROM cnpj_audit.table_load "
            "WHERE release = %s AND status = 'COMPLETED' AND table_name = ANY(%s)",
            (RELEASE, list(TABLES)),
        ).fetchone()
    assert loaded == len(TABLES)


def exited(pid: int) -> bool:
    """Gone, or a zombie its parent (here init, which may reap late) has yet to collect."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_the_embedded_server_is_seen_and_stopped(user_env: dict[str, str]) -> None:
    home = Path(user_env["CNPJ_HOME"])
    checked(shell("cnpj-assets db-url", user_env))
    pid = embedded_server(home).pid
    status = checked(shell("cnpj-assets server status", user_env))
    assert f"running, pid {pid}" in status
    stopped = checked(shell("cnpj-assets server stop", user_env))
    assert stopped.splitlines()[-1] == "embedded PostgreSQL: stopped"
    assert not embedded_server(home).running
    assert exited(pid)
    assert shell("cnpj-assets server status", user_env).returncode == NOT_RUNNING


def test_the_code_location_has_one_name_everywhere(tmp_path: Path) -> None:
    """pyproject.toml, both workspaces and the one `cnpj-assets ui` writes name it alike."""
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]
    workspaces = [
        PROJECT_ROOT / "workspace.yaml",
        PROJECT_ROOT / "deploy" / "workspace.yaml",
    ]
    names = {
        pyproject["dagster"]["code_location_name"],
        pyproject["dg"]["project"]["code_location_name"],
        WORKSPACE_YAML.format(location=CODE_LOCATION).split("location_name: ")[1].strip(),
    }
    for workspace in workspaces:
        (entry,) = yaml.safe_load(workspace.read_text())["load_from"]
        names.add(next(iter(entry.values()))["location_name"])
    assert names == {CODE_LOCATION}
    assert location_origin("load_release").location_name == CODE_LOCATION


def test_download_runs_the_declared_job_with_progress(
    postgres_server: ServerUrl, tmp_path: Path
) -> None:
    """`cnpj-assets download` fetches a release from the share (here a fake one) through
    the download_release job, its log lines showing each zip as it lands."""
    origin = tmp_path / "share"
    write_release(release=RELEASE, rows=200, out_dir=origin, seed=42)
    share = FakeShare.from_landing(origin, [RELEASE]).start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")},
        "CNPJ_RECEITA_URL": share.share_url,
        "CNPJ_RECEITA_LEGACY_URL": "",
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    landing = tmp_path / "landing"
    try:
        done = shell(f"cnpj-assets download --release {RELEASE} --landing {landing}", env)
    finally:
        share.stop()
    printed = checked(done) + done.stderr  # Dagster's log lines go to stderr
    zips = sorted(p.name for p in (landing / RELEASE).glob("*.zip"))
    assert zips == sorted(expected_zip_names())
    assert (landing / RELEASE / "_SUCCESS").is_file()
    assert "Cnaes.zip: " in printed and "in place after 1 attempt(s)" in printed
    assert f"load it: cnpj-assets load --release {RELEASE}" in printed
    instance = get_instance(postgres_server)
    (run,) = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": RELEASE}))
    assert (run.job_name, run.status) == ("download_release", dg.DagsterRunStatus.SUCCESS)
