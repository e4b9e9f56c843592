"""A mistyped URL never shows its password: checked before libpq sees it, redacted after.

libpq quotes the part of a URL it chokes on, and with an unencoded space or `@` in the
password that part is the password. Every command, and a run launched from the UI,
must answer with the mistake named and the password nowhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnpj_assets.cli import main
from cnpj_assets.postgres.url import DatabaseUrlError, check_url, redact
from cnpj_assets_tests.conftest import RELEASE
from cnpj_assets_tests.helpers import materialize

MALFORMED = {  # the password, and how the mistake is named
    "space": ("s3cret pw!x", "space"),
    "unencoded @": ("s3c@ret!pw", "'@'"),
    "unencoded /": ("s3c/ret!pw", "'/'"),
    "bad percent": ("s3c%zzret!pw", "%"),
    "bad port": ("s3cret!pw", "port"),
    "port out of range": ("s3cret!pw", "port"),
}
PORTS = {"bad port": ":54x32", "port out of range": ":99999"}


def url_with(case: str) -> str:
    return f"postgresql://loader:{MALFORMED[case][0]}@127.0.0.1{PORTS.get(case, '')}/cnpj"


def assert_no_password(text: str, case: str) -> None:
    """Neither the password nor any piece of it that a parser may have split off."""
    password = MALFORMED[case][0]
    for piece in [password, *re.split(r"[@ /%]", password)]:
        assert len(piece) < 4 or piece not in text, f"{piece!r} shown"


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_url_is_named_without_its_password(
    case: str, quirks_landing: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CNPJ_DATABASE_URL", url_with(case))
    commands = [
        ["db-url"],
        ["lineage", "11222333000181"],
        ["load", "--release", RELEASE, "--landing", str(quirks_landing)],
    ]
    for command in commands:
        status = main(command)
        out, err = capsys.readouterr()
        assert_no_password(out + err, case)
        assert status == 1 and err.count("\n") == 1, err
        assert "CNPJ_DATABASE_URL is not a valid PostgreSQL URL" in err
        assert MALFORMED[case][1] in err


@pytest.mark.parametrize("case", MALFORMED)
def test_a_run_with_a_malformed_url_fails_without_its_password(
    case: str, quirks_landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CNPJ_DATABASE_URL", url_with(case))
    result = materialize(quirks_landing, RELEASE, ["paises"])
    assert not result.success
    for event in result.all_events:
        assert_no_password(str(event), case)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "not a valid PostgreSQL URL" in str(failure)


def test_the_dagster_storage_url_is_checked_the_same_way(
    quirks_landing: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CNPJ_DAGSTER_STORAGE", url_with("unencoded @"))
    assert main(["load", "--release", RELEASE, "--landing", str(quirks_landing)]) == 1
    out, err = capsys.readouterr()
    assert_no_password(out + err, "unencoded @")
    assert "CNPJ_DAGSTER_STORAGE is not a valid PostgreSQL URL" in err


def test_well_formed_urls_pass_and_every_form_of_their_password_is_redacted() -> None:
    encoded = "postgresql://loader:p%40ss%20w%2Frd@db.example:5432,db2.example/cnpj?sslmode=require"
    in_query = "postgresql://loader@[::1]:5433/cnpj?password=p%40ss&sslmode=verify-full"
    for url in (encoded, in_query, "postgresql:///cnpj?host=/tmp/sockets"):
        check_url(url, "CNPJ_DATABASE_URL")
    said = "could not log in as loader with p%40ss%20w%2Frd, that is p@ss w/rd"
    assert redact(said, encoded) == "could not log in as loader with ***, that is ***"
    assert (
        redact(in_query, in_query)
        == "postgresql://loader@[::1]:5433/cnpj?password=***&sslmode=verify-full"
    )
    with pytest.raises(DatabaseUrlError, match="must start with postgresql://"):
        check_url("mysql://loader:pw@host/cnpj", "CNPJ_DATABASE_URL")
