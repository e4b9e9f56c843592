"""`cnpj-assets serve`, started as a process and read as an HTTP client.

The module loads a synthetic release through `cnpj-assets load` in a database of its
own, starts the API, then loads and publishes the next month's release while the API
runs (it must switch without a restart). Every answer is compared with what the tables
hold (`cnpj_current.cnpj_completo`, read here by SQL) and with the CLI's JSON.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg.rows import dict_row

from cnpj_assets.cli import main
from cnpj_assets.cnpj_number import check_digits
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.synthetic import write_release
from cnpj_assets.synthetic.evolve import evolve_release
from cnpj_assets_tests import dagster_processes
from cnpj_assets_tests.helpers import database_of_its_own, query

FIRST, SECOND = "2025-05", "2025-06"
READER = "cnpj_api_reader"

# minha-receita's keys in its order, each with its JSON type and the cnpj_completo column
# it shows; (ddd, number) for phones, a list for arrays of objects.
INTEGER, STRING, BOOLEAN, NUMBER, ARRAY = int, str, bool, float, list
ESTABLISHMENT: dict[str, tuple[type, Any]] = {
    "cnpj": (STRING, "cnpj"),
    "identificador_matriz_filial": (INTEGER, "identificador_matriz_filial"),
    "descricao_identificador_matriz_filial": (STRING, "identificador_matriz_filial_descricao"),
    "nome_fantasia": (STRING, "nome_fantasia"),
    "situacao_cadastral": (INTEGER, "situacao_cadastral"),
    "descricao_situacao_cadastral": (STRING, "situacao_cadastral_descricao"),
    "data_situacao_cadastral": (STRING, "data_situacao_cadastral"),
    "motivo_situacao_cadastral": (INTEGER, "motivo_situacao_cadastral"),
    "descricao_motivo_situacao_cadastral": (STRING, "motivo_situacao_cadastral_descricao"),
    "nome_cidade_no_exterior": (STRING, "nome_cidade_exterior"),
    "codigo_pais": (INTEGER, "pais"),
    "pais": (STRING, "pais_descricao"),
    "data_inicio_atividade": (STRING, "data_inicio_atividade"),
    "cnae_fiscal": (INTEGER, "cnae_fiscal_principal"),
    "cnae_fiscal_descricao": (STRING, "cnae_fiscal_principal_descricao"),
    "descricao_tipo_de_logradouro": (STRING, "tipo_logradouro"),
    "logradouro": (STRING, "logradouro"),
    "numero": (STRING, "numero"),
    "complemento": (STRING, "complemento"),
    "bairro": (STRING, "bairro"),
    "cep": (STRING, "cep"),
    "uf": (STRING, "uf"),
    "codigo_municipio": (INTEGER, "municipio"),
    "municipio": (STRING, "municipio_descricao"),
    "ddd_telefone_1": (STRING, ("ddd_1", "telefone_1")),
    "ddd_telefone_2": (STRING, ("ddd_2", "telefone_2")),
    "ddd_fax": (STRING, ("ddd_fax", "fax")),
    "email": (STRING, "correio_eletronico"),
    "situacao_especial": (STRING, "situacao_especial"),
    "data_situacao_especial": (STRING, "data_situacao_especial"),
    "opcao_pelo_simples": (BOOLEAN, "opcao_pelo_simples"),
    "data_opcao_pelo_simples": (STRING, "data_opcao_simples"),
    "data_exclusao_do_simples": (STRING, "data_exclusao_simples"),
    "opcao_pelo_mei": (BOOLEAN, "opcao_mei"),
    "data_opcao_pelo_mei": (STRING, "data_opcao_mei"),
    "data_exclusao_do_mei": (STRING, "data_exclusao_mei"),
    "razao_social": (STRING, "razao_social"),
    "codigo_natureza_juridica": (INTEGER, "natureza_juridica"),
    "natureza_juridica": (STRING, "natureza_juridica_descricao"),
    "qualificacao_do_responsavel": (INTEGER, "qualificacao_responsavel"),
    "capital_social": (NUMBER, "capital_social"),
    "codigo_porte": (INTEGER, "porte_empresa"),
    "porte": (STRING, "porte_empresa_descricao"),
    "ente_federativo_responsavel": (STRING, "ente_federativo_responsavel"),
    "cnaes_secundarios": (ARRAY, "cnaes_secundarias"),
    "qsa": (ARRAY, "socios"),
}
SECONDARY: dict[str, tuple[type, str]] = {
    "codigo": (INTEGER, "codigo"),
    "descricao": (STRING, "descricao"),
}
PARTNER: dict[str, tuple[type, str]] = {
    "identificador_de_socio": (INTEGER, "identificador_socio"),
    "nome_socio": (STRING, "nome_socio_razao_social"),
    "cnpj_cpf_do_socio": (STRING, "cpf_cnpj_socio"),
    "codigo_qualificacao_socio": (INTEGER, "qualificacao_socio"),
    "qualificacao_socio": (STRING, "qualificacao_socio_descricao"),
    "data_entrada_sociedade": (STRING, "data_entrada_sociedade"),
    "codigo_pais": (INTEGER, "pais"),
    "pais": (STRING, "pais_descricao"),
    "cpf_representante_legal": (STRING, "representante_legal"),
    "nome_representante_legal": (STRING, "nome_do_representante"),
    "codigo_qualificacao_representante_legal": (INTEGER, "qualificacao_representante_legal"),
    "qualificacao_representante_legal": (STRING, "qualificacao_representante_legal_descricao"),
    "codigo_faixa_etaria": (INTEGER, "faixa_etaria"),
    "faixa_etaria": (STRING, "faixa_etaria_descricao"),
}
KINDS = {  # the establishments the issue names, as SQL conditions on cnpj_completo
    "matriz": "identificador_matriz_filial = '1'",
    "filial": "identificador_matriz_filial = '2'",
    "abroad": "uf = 'EX' AND nome_cidade_exterior IS NOT NULL",
    "mei": "opcao_mei = 'S'",
    "simples excluded": "data_exclusao_simples IS NOT NULL",
    "no partners": "socios = '[]'::jsonb",
    "alphanumeric": "cnpj ~ '[A-Z]'",
}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(port: int, path: str, method: str = "GET", headers: dict | None = None) -> Answer:
    """One request, redirects not followed, errors returned like answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def server(postgres_server: ServerUrl) -> Iterator[ServerUrl]:
    with database_of_its_own(
        postgres_server, "cnpj_http", CNPJ_DAGSTER_URL="http://ui:3000"
    ) as own:
        yield own


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("api_landing")
    write_release(release=FIRST, rows=1500, out_dir=landing, seed=24)
    evolve_release(landing / FIRST, SECOND, landing, seed=25)
    return landing


def serve(port: int, logs: Path, **env: str) -> Any:
    command = [dagster_processes.executable("cnpj-assets"), "serve", "--port", str(port)]
    process = dagster_processes.start(f"api-{port}", command, {**os.environ, **env}, logs)

    def ready() -> bool:
        dagster_processes.alive({f"api-{port}": process}, logs)
        return fetch(port, "/healthz").status == 200

    try:
        dagster_processes.wait_for("the API's /healthz", ready, 120, every=0.5)
    except BaseException:
        dagster_processes.stop_group(process)
        raise
    return process


@dataclass(frozen=True)
class Api:
    port: int
    pid: int
    served_before: str  # X-Cnpj-Release of a lookup before SECOND was loaded
    sample: str  # a CNPJ in both releases


@pytest.fixture(scope="module")
def api(
    server: ServerUrl, landing: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """FIRST published, the API started, then SECOND loaded and published under it."""
    assert main(["load", "--release", FIRST, "--landing", str(landing)]) == 0
    port = dagster_processes.free_port()
    process = serve(port, tmp_path_factory.mktemp("api_logs"))
    try:
        (first,) = query(server, "SELECT min(cnpj) FROM cnpj_current.cnpj_completo")[0]
        before = fetch(port, f"/{first}")
        assert before.status == 200
        assert main(["load", "--release", SECOND, "--landing", str(landing)]) == 0
        (sample,) = query(
            server,
            "SELECT min(cnpj) FROM cnpj.cnpj_completo WHERE release = %s "
            "AND identificador_matriz_filial = '1' AND cnpj IN "
            "(SELECT cnpj FROM cnpj.cnpj_completo WHERE release = %s)",
            (SECOND, FIRST),
        )[0]
        yield Api(port, process.pid, before.headers["x-cnpj-release"], sample)
    finally:
        dagster_processes.stop_group(process)


def completo_rows(server: ServerUrl, condition: str, release: str = SECOND) -> list[dict]:
    with (
        psycopg.connect(server.url) as connection,
        connection.cursor(row_factory=dict_row) as cursor,
    ):
        return cursor.execute(
            f"SELECT * FROM cnpj.cnpj_completo WHERE release = %s AND {condition} ORDER BY cnpj",  # noqa: S608
            (release,),
        ).fetchall()


def expected_value(kind: type, source: Any, row: dict) -> Any:
    """What the answer must hold for one key, computed from the table's row."""
    if isinstance(source, tuple):
        return "".join(row[c] or "" for c in source) or None
    value = row[source]
    if value is None:
        return None
    if kind is INTEGER:
        return int(value)
    if kind is BOOLEAN:
        return {"S": True, "N": False}.get(value)
    if kind is NUMBER:
        return float(Decimal(value))
    if isinstance(value, date):
        return value.isoformat()
    if source == "cnaes_secundarias":
        return [expected_object(SECONDARY, item) for item in value]
    if source == "socios":
        return [expected_object(PARTNER, item) for item in value]
    return value


def expected_object(keys: dict[str, tuple[type, Any]], row: dict) -> dict[str, Any]:
    return {name: expected_value(kind, source, row) for name, (kind, source) in keys.items()}


def assert_types(document: dict, keys: dict[str, tuple[type, Any]]) -> None:
    assert list(document) == list(keys)
    for name, (kind, _) in keys.items():
        value = document[name]
        if kind is ARRAY:
            assert isinstance(value, list), name
        elif value is not None:
            assert type(value) is kind, (name, value)


def test_every_kind_of_establishment_reads_as_the_tables_hold(api: Api, server: ServerUrl) -> None:
    """Each kind the issue names, and for every key one establishment where it is not
    null: the keys in minha-receita's order, their JSON types, the values of the row."""
    rows = {kind: completo_rows(server, condition)[0] for kind, condition in KINDS.items()}
    partners = completo_rows(server, "TRUE")
    rows["many partners"] = max(partners, key=lambda r: len(r["socios"]))
    assert len(rows["many partners"]["socios"]) >= 3
    for name, (_, source) in ESTABLISHMENT.items():
        columns = source if isinstance(source, tuple) else (source,)
        condition = " AND ".join(
            f"{c} <> '[]'::jsonb" if c in ("socios", "cnaes_secundarias") else f"{c} IS NOT NULL"
            for c in columns
        )
        rows[name] = completo_rows(server, condition)[0]
    for name, (_, column) in PARTNER.items():
        condition = f"socios @? '$[*] ? (@.{column} != null)'"
        rows[f"qsa.{name}"] = completo_rows(server, condition)[0]
    not_null: set[str] = set()
    for kind, row in rows.items():
        answer = fetch(api.port, f"/{row['cnpj']}")
        assert answer.status == 200, kind
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["x-cnpj-release"] == SECOND
        document = answer.json()
        assert_types(document, ESTABLISHMENT)
        for partner in document["qsa"]:
            assert_types(partner, PARTNER)
        for activity in document["cnaes_secundarios"]:
            assert_types(activity, SECONDARY)
        assert document == expected_object(ESTABLISHMENT, row), kind
        not_null |= {k for k, v in document.items() if v not in (None, [])}
        not_null |= {f"qsa.{k}" for p in document["qsa"] for k, v in p.items() if v is not None}
    assert not_null >= set(ESTABLISHMENT) | {f"qsa.{k}" for k in PARTNER}


def test_the_cnpj_in_every_spelling(api: Api, server: ServerUrl) -> None:
    """Punctuated (slash included) or not, letters in either case: the same answer."""
    cnpj = completo_rows(server, KINDS["alphanumeric"])[0]["cnpj"]
    plain = fetch(api.port, f"/{cnpj}")
    punctuated = f"/{cnpj[:2]}.{cnpj[2:5]}.{cnpj[5:8]}/{cnpj[8:12]}-{cnpj[12:]}"
    for path in (punctuated, f"/{cnpj.lower()}"):
        answer = fetch(api.port, path)
        assert (answer.status, answer.body) == (200, plain.body)


def test_errors_as_minha_receita_answers_them(api: Api, server: ServerUrl) -> None:
    present = {r[0] for r in query(server, "SELECT cnpj_basico FROM cnpj.estabelecimentos")}
    absent = next(
        base + check_digits(base)
        for base in (f"{n:08d}0001" for n in range(10_000_000, 10_001_000))
        if base[:8] not in present
    )
    for path, status in (
        (f"/{api.sample[:13]}", 400),  # 13 characters
        (f"/{api.sample[:12]}{(int(api.sample[12:]) + 1) % 100:02d}", 400),  # check digits
        (f"/{api.sample[:8]}", 400),  # a base, not an establishment
        ("/not-a-cnpj", 400),
        (f"/{absent}", 404),
        (f"/{api.sample}?release=2025-13x", 400),
        (f"/{api.sample}?release=1999-01", 404),
        (f"/{absent}/lineage", 404),
        (f"/{absent}/history", 404),
        ("/12/lineage", 400),
    ):
        answer = fetch(api.port, path)
        assert answer.status == status, path
        assert answer.headers["content-type"] == "application/json"
        assert set(answer.json()) == {"message"} and answer.json()["message"], path
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        answer = fetch(api.port, f"/{api.sample}", method)
        assert answer.status == 405, method
        assert "message" in answer.json()
    head = fetch(api.port, f"/{api.sample}", "HEAD")
    assert (head.status, head.body) == (200, b"")
    options = fetch(api.port, f"/{api.sample}", "OPTIONS")
    assert options.status == 204 and "GET" in options.headers["allow"]


def test_a_named_release_and_the_switch_without_restart(api: Api, server: ServerUrl) -> None:
    """The API started on FIRST served SECOND once it was published, in the same process;
    ?release= reads a loaded release other than the published one."""
    assert api.served_before == FIRST
    assert dagster_processes._group_alive(api.pid)
    current = fetch(api.port, f"/{api.sample}")
    assert current.headers["x-cnpj-release"] == SECOND
    old = fetch(api.port, f"/{api.sample}?release={FIRST}")
    assert old.status == 200 and old.headers["x-cnpj-release"] == FIRST
    (row,) = completo_rows(server, f"cnpj = '{api.sample}'", FIRST)
    assert old.json() == expected_object(ESTABLISHMENT, row)
    assert "86400" in old.headers["cache-control"]
    updated = fetch(api.port, "/updated").json()
    assert updated["release"] == SECOND and SECOND in updated["message"]


def _cli_json(capsys: pytest.CaptureFixture[str], *arguments: str) -> Any:
    capsys.readouterr()
    assert main([*arguments, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_lineage_and_history_equal_the_cli(
    api: Api, server: ServerUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = query(
        server,
        "SELECT c.cnpj FROM cnpj.changes c WHERE c.release = %s "
        "AND c.table_name = 'estabelecimentos' AND (SELECT count(DISTINCT e.release) "
        "FROM cnpj.estabelecimentos e WHERE e.cnpj_basico = left(c.cnpj, 8) "
        "AND e.cnpj_ordem = substr(c.cnpj, 9, 4) AND e.cnpj_dv = right(c.cnpj, 2)) = 2 "
        "ORDER BY c.cnpj LIMIT 1",
        (SECOND,),
    )[0][0]
    for cnpj in (api.sample, changed, api.sample[:8]):
        for what in ("lineage", "history"):
            answer = fetch(api.port, f"/{cnpj}/{what}")
            assert answer.status == 200, (cnpj, what)
            assert answer.json() == _cli_json(capsys, what, cnpj)
    history = fetch(api.port, f"/{changed}/history").json()
    assert history["releases"] == [FIRST, SECOND] and history["changes"]
    lineage = fetch(api.port, f"/{api.sample}/lineage").json()
    assert {r["release"] for r in lineage["rows"]} == {FIRST, SECOND}
    assert all(r["run_url"].startswith("http://ui:3000/runs/") for r in lineage["rows"])


def test_service_endpoints(api: Api) -> None:
    assert fetch(api.port, "/healthz").json() == {"status": "ok", "release": SECOND}
    root = fetch(api.port, "/")
    assert root.status == 302 and root.headers["location"] == "/docs"
    assert fetch(api.port, "/?").status == 302
    docs = fetch(api.port, "/docs")
    assert docs.status == 200 and b"/openapi.json" in docs.body
    openapi = fetch(api.port, "/openapi.json").json()
    assert {"/", "/{cnpj}", "/{cnpj}/lineage", "/{cnpj}/history", "/updated"} <= set(
        openapi["paths"]
    )
    schema = openapi["components"]["schemas"]["Establishment"]
    assert list(schema["properties"]) == list(ESTABLISHMENT)
    fetch(api.port, "/not-a-cnpj")
    metrics = fetch(api.port, "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.body.decode()
    for sample in (
        'cnpj_api_requests_total{method="GET",route="cnpj",status="200"',
        'cnpj_api_errors_total{status="400"',
        'cnpj_api_request_seconds_bucket{route="cnpj",le="+Inf"',
        'cnpj_api_pool_connections{state="open"',
        f'cnpj_api_served_release{{release="{SECOND}"',
    ):
        assert sample in text, sample


def test_cors_cache_and_gzip(api: Api) -> None:
    origin = {"Origin": "https://example.org"}
    answer = fetch(api.port, f"/{api.sample}", headers=origin)
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "max-age=" in answer.headers["cache-control"]
    preflight = fetch(
        api.port, f"/{api.sample}", "OPTIONS", {**origin, "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status == 200 and "GET" in preflight.headers["access-control-allow-methods"]
    plain = fetch(api.port, f"/{api.sample}/lineage")
    zipped = fetch(api.port, f"/{api.sample}/lineage", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert len(zipped.body) < len(plain.body) and gzip.decompress(zipped.body) == plain.body


def test_a_role_that_can_only_select(api: Api, server: ServerUrl, tmp_path: Path) -> None:
    """The GRANTs of docs/api.md are enough to serve every endpoint, and the role writes nothing."""
    grants = (Path(__file__).parents[1] / "docs" / "api.md").read_text()
    block = grants.split("```sql\n-- the API's role\n", 1)[1].split("```", 1)[0]
    database = urlsplit(server.url).path.lstrip("/")
    with psycopg.connect(server.url, autocommit=True) as connection:
        connection.execute(f"DROP OWNED BY {READER}" if _role_exists(connection) else "SELECT 1")
        connection.execute(f"DROP ROLE IF EXISTS {READER}")
        connection.execute(
            block.replace("cnpj_api", READER).replace("DATABASE cnpj ", f"DATABASE {database} ")
        )
    reader_url = server.url.replace("postgresql://postgres", f"postgresql://{READER}", 1)
    port = dagster_processes.free_port()
    process = serve(port, tmp_path, CNPJ_API_DATABASE_URL=reader_url)
    try:
        for path in (f"/{api.sample}", f"/{api.sample}?release={FIRST}", "/updated"):
            assert fetch(port, path).status == 200, path
        for what in ("lineage", "history"):
            assert (
                fetch(port, f"/{api.sample}/{what}").json()
                == fetch(api.port, f"/{api.sample}/{what}").json()
            )
    finally:
        dagster_processes.stop_group(process)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), psycopg.connect(reader_url) as reader:
        reader.execute("DELETE FROM cnpj.labels")


def _role_exists(connection: psycopg.Connection) -> bool:
    return bool(
        connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER,)).fetchone()
    )


def _search_all(port: int, query_string: str) -> list[dict]:
    """Every page of a search, following its cursors."""
    found, cursor = [], None
    while True:
        path = f"/?{query_string}" + (f"&cursor={cursor}" if cursor else "")
        answer = fetch(port, path)
        assert answer.status == 200, (path, answer.body[:200])
        page = answer.json()
        assert set(page) == {"data", "cursor"}
        found += page["data"]
        cursor = page["cursor"]
        if cursor is None:
            return found


def _cnpjs(server: ServerUrl, condition: str, params: tuple) -> list[str]:
    statement = (
        "SELECT cnpj FROM cnpj.cnpj_completo WHERE release = %s AND "  # noqa: S608
        f"{condition} ORDER BY cnpj"
    )
    return [r[0] for r in query(server, statement, (SECOND, *params))]


def test_search_pages_as_the_tables_hold(api: Api, server: ServerUrl) -> None:
    """OR within a parameter (commas or repeated), AND across them, pages by cursor with
    no row twice, each row the establishment's whole answer."""
    (first, second), (nature,) = (
        [r[0] for r in query(server, sql_, (SECOND,))]
        for sql_ in (
            "SELECT uf FROM cnpj.estabelecimentos WHERE release = %s GROUP BY uf "
            "ORDER BY count(*) DESC, uf LIMIT 2",
            "SELECT natureza_juridica FROM cnpj.empresas WHERE release = %s "
            "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
        )
    )
    both = _search_all(api.port, f"uf={first},{second}&limit=7")
    expected = _cnpjs(server, "uf = ANY(%s)", ([first, second],))
    assert [d["cnpj"] for d in both] == expected and len(expected) > 14
    repeated = fetch(api.port, f"/?uf={first}&uf={second}&limit=7").json()
    assert repeated["data"] == both[:7]
    for document in both[:3]:
        assert fetch(api.port, f"/{document['cnpj']}").json() == document
    narrowed = _search_all(api.port, f"uf={first}&natureza_juridica={nature}")
    assert [d["cnpj"] for d in narrowed] == _cnpjs(
        server, "uf = %s AND natureza_juridica = %s", (first, nature)
    )
    partner = query(
        server,
        "SELECT cpf_cnpj_socio FROM cnpj.socios WHERE release = %s AND identificador_socio = '1' "
        "ORDER BY cpf_cnpj_socio LIMIT 1",
        (SECOND,),
    )[0][0]
    by_partner = _search_all(api.port, f"cnpf={partner}")
    assert [d["cnpj"] for d in by_partner] == _cnpjs(
        server, "socios @? ('$[*] ? (@.cpf_cnpj_socio == \"' || %s || '\")')::jsonpath", (partner,)
    )
    page = fetch(api.port, f"/?uf={first}&limit=3")
    assert page.headers["x-cnpj-release"] == SECOND and "max-age=" in page.headers["cache-control"]


def test_search_errors(api: Api) -> None:
    for path in (
        "/?uf=SP&limit=1025",
        "/?uf=SP&limit=0",
        "/?uf=SP&limit=many",
        "/?estado=SP",
        "/?uf=SP&cursor=not-a-cursor",
        "/?cnae_fiscal=4711302",
        "/?limit=10",
    ):
        answer = fetch(api.port, path)
        assert answer.status == 400, path
        assert set(answer.json()) == {"message"}
