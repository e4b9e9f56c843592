"""Search: every filter and their combinations against an oracle written here, pages,
the CSV export, the SQL function, and a search that a publication happens in.

The module loads one release with quirks through `cnpj-assets load` (which publishes it
and builds the search indexes) in a database of its own; the last tests publish a
second release (the same rows under the next month's name) between pages.
The oracle reads the tables with plain SQL and applies the documented rules in Python:
words folded by Unicode decomposition (not by PostgreSQL's unaccent), CNAE lists split
by hand, partner CPFs masked by hand.
"""

from __future__ import annotations

import csv
import json
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from cnpj_assets.cli import main
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.read.search import (
    COLUMNS,
    Cursor,
    SearchError,
    SearchFilters,
    search_page,
    stream_rows,
)
from cnpj_assets.read.search_indexes import SEARCH_INDEXES, build_search_indexes
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.helpers import database_of_its_own, query

RELEASE, NEXT = "2025-05", "2025-06"
ROWS = 3000
PUBLISHED = "SELECT max(release) FROM cnpj_audit.publication WHERE outcome = 'published'"


def fold(text: str | None) -> set[str]:
    """The documented word rule, written independently of cnpj.search_words."""
    if not text:
        return set()
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return {w for w in re.split(r"[^A-Z0-9]+", plain.upper()) if w}


@dataclass
class Row:
    cnpj: str
    uf: str
    municipio: str
    situacao: str
    matriz: str
    principal: str
    secondary: set[str]
    natureza: str | None
    razao: set[str]
    fantasia: set[str]
    documents: set[str] = field(default_factory=set)
    partners: list[set[str]] = field(default_factory=list)


def expected(rows: list[Row], f: SearchFilters) -> list[str]:
    """The CNPJs the rules give, ordered."""

    def hit(r: Row) -> bool:
        if f.uf and r.uf not in f.uf:
            return False
        if f.municipio and r.municipio not in f.municipio:
            return False
        if f.situacao and r.situacao not in f.situacao:
            return False
        if f.natureza and r.natureza not in f.natureza:
            return False
        if f.matriz and r.matriz != "1":
            return False
        if f.cnae and r.principal not in f.cnae and not (r.secondary & set(f.cnae)):
            return False
        if f.name and not fold(f.name) <= (r.razao | r.fantasia):
            return False
        if f.socio:
            masked = {_masked(v) for v in f.socio}
            names = [fold(v) for v in f.socio if not re.search(r"\d", v)]
            if not (r.documents & masked) and not any(n <= p for n in names for p in r.partners):
                return False
        return True

    return sorted({r.cnpj for r in rows if hit(r)})


def _masked(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    return f"***{digits[3:9]}**" if len(digits) == 11 else digits


@pytest.fixture(scope="module")
def server(postgres_server: ServerUrl) -> Iterator[ServerUrl]:
    with database_of_its_own(postgres_server, "cnpj_search") as own:
        yield own


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("search_landing")
    for release in (RELEASE, NEXT):
        write_release(release=release, rows=ROWS, out_dir=landing, seed=41, quirks=True)
    return landing


@pytest.fixture(scope="module")
def loaded(server: ServerUrl, landing: Path) -> None:
    assert main(["load", "--release", RELEASE, "--landing", str(landing)]) == 0


@pytest.fixture(scope="module")
def rows(loaded: None, server: ServerUrl) -> list[Row]:
    companies = {
        b: (razao, natureza)
        for b, razao, natureza in query(
            server,
            "SELECT DISTINCT ON (cnpj_basico) cnpj_basico, razao_social, natureza_juridica "
            "FROM cnpj.empresas WHERE release = %s ORDER BY cnpj_basico, _subbatch_id",
            (RELEASE,),
        )
    }
    documents: dict[str, set[str]] = {}
    partners: dict[str, list[set[str]]] = {}
    for basico, document, name in query(
        server,
        "SELECT cnpj_basico, cpf_cnpj_socio, nome_socio_razao_social FROM cnpj.socios "
        "WHERE release = %s",
        (RELEASE,),
    ):
        documents.setdefault(basico, set()).add(document)
        partners.setdefault(basico, []).append(fold(name))
    found = []
    for basico, ordem, dv, uf, municipio, situacao, matriz, principal, secondary, fantasia in query(
        server,
        "SELECT cnpj_basico, cnpj_ordem, cnpj_dv, uf, municipio, situacao_cadastral, "
        "identificador_matriz_filial, cnae_fiscal_principal, cnae_fiscal_secundaria, "
        "nome_fantasia FROM cnpj.estabelecimentos WHERE release = %s",
        (RELEASE,),
    ):
        razao, natureza = companies.get(basico, (None, None))
        codes = {c.strip() for c in (secondary or "").split(",") if c.strip()}
        found.append(
            Row(
                basico + ordem + dv,
                uf,
                municipio,
                situacao,
                matriz,
                principal,
                codes,
                natureza,
                fold(razao),
                fold(fantasia),
                documents.get(basico, set()),
                partners.get(basico, []),
            )
        )
    return found


def _most_common(values: list[str], n: int = 1) -> list[str]:
    return [value for value, _ in Counter(values).most_common(n)]


@pytest.fixture(scope="module")
def cases(rows: list[Row]) -> dict[str, SearchFilters]:
    """Filters whose values come from the data, so each selects some rows but not all."""
    ufs = _most_common([r.uf for r in rows], 2)
    municipio = _most_common([r.municipio for r in rows])[0]
    secondary_only = next(code for r in rows for code in sorted(r.secondary) if code != r.principal)
    principal = _most_common([r.principal for r in rows])[0]
    natureza = _most_common([r.natureza for r in rows if r.natureza])[0]
    razao_word = _most_common([w for r in rows for w in r.razao if len(w) > 3], 5)[-1]
    mixed = next(r for r in rows if r.fantasia - r.razao and r.razao - r.fantasia)
    mixed_name = f"{min(mixed.razao - mixed.fantasia).lower()} {min(mixed.fantasia - mixed.razao)}"
    masked = next(d for r in rows for d in sorted(r.documents) if d.startswith("***"))
    cpf = f"000.{masked[3:6]}.{masked[6:9]}-00"
    cnpj_partner = next(d for r in rows for d in sorted(r.documents) if re.fullmatch(r"\d{14}", d))
    partner_name = next(" ".join(sorted(p)[:2]) for r in rows for p in r.partners if len(p) > 2)
    return {
        "uf": SearchFilters(uf=(ufs[0],)),
        "uf repeated": SearchFilters(uf=(ufs[0], ufs[1].lower())),
        "municipio": SearchFilters(municipio=(municipio,)),
        "cnae secondary": SearchFilters(cnae=(secondary_only,)),
        "cnae principal, punctuated": SearchFilters(
            cnae=(f"{principal[:4]}-{principal[4]}/{principal[5:]}",)
        ),
        "cnae repeated": SearchFilters(cnae=(principal, secondary_only)),
        "natureza": SearchFilters(natureza=(natureza,)),
        "situacao": SearchFilters(situacao=("02", "08")),
        "matriz": SearchFilters(matriz=True),
        "name one word": SearchFilters(name=razao_word),
        "name in both": SearchFilters(name=mixed_name),
        "socio cpf": SearchFilters(socio=(cpf,)),
        "socio cnpj": SearchFilters(socio=(cnpj_partner,)),
        "socio name": SearchFilters(socio=(partner_name,)),
        "uf + cnae": SearchFilters(uf=(ufs[0],), cnae=(principal, secondary_only)),
        "name + uf": SearchFilters(name=razao_word, uf=(ufs[0],)),
        "natureza + situacao + matriz": SearchFilters(
            natureza=(natureza,), situacao=("02",), matriz=True
        ),
        "socio + uf": SearchFilters(socio=(cpf, partner_name), uf=tuple(ufs)),
        "municipio + name + cnae": SearchFilters(
            municipio=(mixed.municipio,), name=max(mixed.razao), cnae=(mixed.principal,)
        ),
    }


CASES = (
    "uf",
    "uf repeated",
    "municipio",
    "cnae secondary",
    "cnae principal, punctuated",
    "cnae repeated",
    "natureza",
    "situacao",
    "matriz",
    "name one word",
    "name in both",
    "socio cpf",
    "socio cnpj",
    "socio name",
    "uf + cnae",
    "name + uf",
    "natureza + situacao + matriz",
    "socio + uf",
    "municipio + name + cnae",
)


@pytest.mark.parametrize("case", CASES)
def test_each_filter_and_combination_equals_the_oracle(
    case: str, cases: dict[str, SearchFilters], rows: list[Row], server: ServerUrl
) -> None:
    """Every row (the export) and the first page are the oracle's, in CNPJ order; each
    case selects some rows and not all, so a filter that did nothing would fail."""
    filters = cases[case]
    oracle = expected(rows, filters)
    assert 0 < len(oracle) < len(rows), case
    with psycopg.connect(server.url) as connection:
        everything = [row["cnpj"] for row in stream_rows(connection, filters, release=RELEASE)]
        page, _ = search_page(connection, filters, limit=20, release=RELEASE)
    assert everything == oracle
    assert [row["cnpj"] for row in page] == oracle[:20]
    assert {row["release"] for row in page} == {RELEASE}


@pytest.mark.parametrize("case", ["cnae secondary", "cnae repeated", "uf + cnae"])
def test_cnae_falls_back_to_the_text_column_while_the_table_has_no_rows(
    case: str, cases: dict[str, SearchFilters], rows: list[Row], server: ServerUrl
) -> None:
    """With the release's cnaes_secundarias rows gone (deleted in a transaction rolled
    back after), a secondary CNAE is found by splitting cnae_fiscal_secundaria."""
    filters = cases[case]
    with psycopg.connect(server.url) as connection:
        deleted = connection.execute(
            "DELETE FROM cnpj.cnaes_secundarias WHERE release = %s", (RELEASE,)
        ).rowcount
        everything = [row["cnpj"] for row in stream_rows(connection, filters)]
        page, _ = search_page(connection, filters, limit=20)
        connection.rollback()
    assert deleted > 0
    assert everything == expected(rows, filters)
    assert [row["cnpj"] for row in page] == everything[:20]


def test_the_load_built_every_search_index_once(loaded: None, server: ServerUrl) -> None:
    """`cnpj-assets load` ran after_publication: every index valid on the release's
    children; a second build finds them all and builds none."""
    found = query(
        server,
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname LIKE %s",
        (f"%{RELEASE.replace('-', '_')}_search_%",),
    )
    assert sorted(name.rsplit("_search_", 1)[1] for name, _ in found) == sorted(
        index.name for index in SEARCH_INDEXES
    )
    assert all(valid for _, valid in found)
    again = build_search_indexes(server.url, RELEASE, lambda _: None)
    assert len(again) == len(SEARCH_INDEXES) and not any(b.built for b in again)


def test_the_sql_function_gives_the_cli_rows(
    cases: dict[str, SearchFilters], server: ServerUrl, rows: list[Row]
) -> None:
    """cnpj_current.search(...) with the same filters returns the same rows."""
    f = cases["uf + cnae"]
    got = query(
        server,
        "SELECT cnpj FROM cnpj_current.search(uf => %s, cnae => %s)",
        (list(f.uf), list(f.cnae)),
    )
    assert [c for (c,) in got] == expected(rows, f)
    f = cases["name in both"]
    got = query(server, "SELECT cnpj FROM cnpj_current.search(name => %s)", (f.name,))
    assert [c for (c,) in got] == expected(rows, f)
    f = cases["socio + uf"]
    cpf, name = f.socio
    got = query(
        server,
        "SELECT cnpj FROM cnpj_current.search(socio_documento => %s, uf => %s)",
        (["***" + re.sub(r"\D", "", cpf)[3:9] + "**"], list(f.uf)),
    )
    assert [c for (c,) in got] == expected(rows, SearchFilters(socio=(cpf,), uf=f.uf))
    got = query(server, "SELECT cnpj FROM cnpj_current.search(socio_nome => %s)", (name,))
    assert [c for (c,) in got] == expected(rows, SearchFilters(socio=(name,)))
    everything = query(server, "SELECT count(*) FROM cnpj_current.search()")
    assert everything == [(len({r.cnpj for r in rows}),)]


def test_accents_and_case_are_ignored(rows: list[Row], server: ServerUrl) -> None:
    """A name typed without accents, in lower case, or with other accents finds the same."""
    accented = next(
        w for r in rows for w in r.razao if w.isalpha() and len(w) > 3 and w[1] in "AEIOU"
    )
    other_accent = {"A": "á", "E": "ê", "I": "í", "O": "õ", "U": "ü"}[accented[1]]
    spellings = [accented, accented.lower(), accented[0] + other_accent + accented[2:]]
    with psycopg.connect(server.url) as connection:
        found = [
            [row["cnpj"] for row in stream_rows(connection, SearchFilters(name=spelling))]
            for spelling in spellings
        ]
    assert found[0] == found[1] == found[2] == expected(rows, SearchFilters(name=accented))
    assert found[0]


def test_five_pages_equal_one_query(
    cases: dict[str, SearchFilters], rows: list[Row], server: ServerUrl
) -> None:
    """Pages by cursor: no row twice, none skipped, the last page says so."""
    filters = cases["uf"]
    oracle = expected(rows, filters)
    limit = -(-len(oracle) // 5)
    pages, cursor = [], None
    with psycopg.connect(server.url) as connection:
        for _ in range(5):
            page, cursor = search_page(connection, filters, limit, cursor)
            pages.append([row["cnpj"] for row in page])
            if cursor is None:
                break
    assert len(pages) == 5 and cursor is None
    assert [c for page in pages for c in page] == oracle


def test_csv_export_round_trips(
    cases: dict[str, SearchFilters], rows: list[Row], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`--format csv --out FILE`: every row (no limit), read back by a CSV reader, names
    with quotes, semicolons and accents intact; a progress line on stderr."""
    out = tmp_path / "export.csv"
    filters = cases["uf"]
    args = ["search", "--uf", filters.uf[0], "--limit", "3", "--format", "csv", "--out", str(out)]
    assert main(args) == 0
    with out.open(newline="", encoding="utf-8") as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == list(COLUMNS)
    assert [r["cnpj"] for r in read] == expected(rows, filters)
    assert "exported" in capsys.readouterr().err
    quoted = tmp_path / "quoted.csv"
    assert main(["search", "--name", "barateiro", "--format", "csv", "--out", str(quoted)]) == 0
    with quoted.open(newline="", encoding="utf-8") as handle:
        names = [r["razao_social"] for r in csv.DictReader(handle)]
    assert 'COMERCIAL "O BARATEIRO" LTDA' in names


def test_cli_table_and_json_pages(
    cases: dict[str, SearchFilters], capsys: pytest.CaptureFixture
) -> None:
    """A table page prints the cursor of the next; JSON carries it; both continue."""
    assert main(["search", "--uf", cases["uf"].uf[0], "--limit", "2", "--format", "json"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert len(page["rows"]) == 2 and page["next_cursor"]
    args = ["search", "--uf", cases["uf"].uf[0], "--limit", "2", "--cursor", page["next_cursor"]]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert page["rows"][1]["cnpj"] not in printed.out
    assert "next page: --cursor" in printed.err


def test_a_cursor_is_refused_for_other_filters_or_a_release_gone(
    cases: dict[str, SearchFilters], server: ServerUrl
) -> None:
    with psycopg.connect(server.url) as connection:
        _, cursor = search_page(connection, cases["uf"], limit=2)
        assert cursor is not None
        with pytest.raises(SearchError, match="other filters"):
            search_page(connection, cases["municipio"], limit=2, cursor=cursor)
        gone = Cursor("2001-01", cases["uf"].digest(), "00000000000000").encode()
        with pytest.raises(SearchError, match="no longer kept"):
            search_page(connection, cases["uf"], limit=2, cursor=gone)
        with pytest.raises(SearchError, match="not a search cursor"):
            search_page(connection, cases["uf"], limit=2, cursor="garbage")


def test_searches_during_a_publication_read_one_release(
    cases: dict[str, SearchFilters], rows: list[Row], server: ServerUrl, landing: Path
) -> None:
    """While the next release (the same rows) is loaded and published, searches in a
    loop each return one release's rows, never a mix; the pages of a cursor taken
    before it read on the release they started on, whole; a new search reads the new one.
    """
    filters = cases["uf"]
    oracle = expected(rows, filters)
    seen: list[tuple[set[str], list[str]]] = []
    done = threading.Event()

    def search_meanwhile() -> None:
        with psycopg.connect(server.url, autocommit=True) as connection:
            while not done.is_set():
                page, _ = search_page(connection, filters, limit=50)
                seen.append(({row["release"] for row in page}, [row["cnpj"] for row in page]))

    with psycopg.connect(server.url, autocommit=True) as connection:
        first, cursor = search_page(connection, filters, limit=7)
        searcher = threading.Thread(target=search_meanwhile)
        searcher.start()
        try:
            assert main(["load", "--release", NEXT, "--landing", str(landing)]) == 0
        finally:
            done.set()
            searcher.join()
        pages = first
        while cursor is not None:
            page, cursor = search_page(connection, filters, limit=7, cursor=cursor)
            pages += page
        fresh, _ = search_page(connection, filters, limit=7)
    assert query(server, PUBLISHED) == [(NEXT,)]
    assert {row["release"] for row in pages} == {RELEASE}
    assert [row["cnpj"] for row in pages] == oracle
    assert {row["release"] for row in fresh} == {NEXT}
    assert seen
    for releases, cnpjs in seen:
        assert len(releases) == 1 and cnpjs == oracle[:50]
