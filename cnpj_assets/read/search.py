"""Search: establishments by name, place, activity, legal nature, status and partner.

One query per page, built here once for every door: the CLI and the HTTP API call
`search_page` (a page and the cursor to the next) and `stream_rows` (every row, for CSV),
and psql users call `cnpj_current.search(...)`, whose body is the same query with the
published release written in (`function_body`).

Filters combine with AND, the values of one filter with OR. A filter with alternatives
(a CNAE is the principal or a secondary activity; a name is in the razao social or in
the nome fantasia) becomes branches, each an index-friendly query ordered by CNPJ: the
keys of a page are the first `limit` of their union, so a page reads about
`limit x branches` keys, not every match.

Pages are keyset by CNPJ (no row twice, none skipped) and pinned to one release: the
opaque cursor carries the release it started on and the last CNPJ, so a publication
between two pages does not mix releases; a cursor whose release was dropped since (by
retention) is refused with a message saying to start again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from itertools import product
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from cnpj_assets.audit.queries import published_release
from cnpj_assets.one_line_error import OneLineError
from cnpj_assets.postgres import tables
from cnpj_assets.read.cnaes_secundarias import CNAES_SECUNDARIAS, SOURCE_COLUMN, codes_of
from cnpj_assets.read.label_table import label_join
from cnpj_assets.read.labels import IDENTIFICADOR_MATRIZ_FILIAL, SITUACAO_CADASTRAL
from cnpj_assets.read.search_functions import ensure_functions, function, words_function
from cnpj_assets.specs import EMPRESAS, ESTABELECIMENTOS, SOCIOS

COLUMNS = (
    "release",
    "cnpj",
    "razao_social",
    "nome_fantasia",
    "identificador_matriz_filial",
    "identificador_matriz_filial_descricao",
    "situacao_cadastral",
    "situacao_cadastral_descricao",
    "uf",
    "municipio",
    "municipio_descricao",
    "cnae_fiscal_principal",
    "cnae_fiscal_principal_descricao",
    "natureza_juridica",
    "natureza_juridica_descricao",
)
"""The columns of a result row, in order: every door shows these."""

KEY = ("cnpj_basico", "cnpj_ordem", "cnpj_dv")
MAX_LIMIT = 1000
_CURSOR_VERSION = 1
_MASKED_CPF = re.compile(r"^\*{3}\d{6}\*{2}$")


class SearchError(OneLineError, ValueError):
    """A search that cannot run as asked: bad filter, bad or stale cursor, no release."""


@dataclass(frozen=True)
class SearchFilters:
    """What to find. Empty tuples and None filter nothing; every filter given must hold
    (AND), any value of a repeated one may (OR). `socio` values are partner documents
    (CPF of 11 digits, masked `***123456**` or a 14-character CNPJ, punctuation ignored)
    or partner names (every word in the name)."""

    name: str | None = None
    uf: tuple[str, ...] = ()
    municipio: tuple[str, ...] = ()
    cnae: tuple[str, ...] = ()
    natureza: tuple[str, ...] = ()
    situacao: tuple[str, ...] = ()
    socio: tuple[str, ...] = ()
    matriz: bool = False

    def __post_init__(self) -> None:
        for name in ("uf", "municipio", "cnae", "natureza", "situacao", "socio"):
            values = tuple(v.strip() for v in getattr(self, name) if v and v.strip())
            object.__setattr__(self, name, values)
        object.__setattr__(self, "uf", tuple(v.upper() for v in self.uf))
        object.__setattr__(self, "cnae", tuple(re.sub(r"[^0-9A-Za-z]", "", v) for v in self.cnae))
        if self.name is not None and not _has_word(self.name):
            raise SearchError(f"--name {self.name!r} has no word (letters or digits) to search")

    @property
    def partner_documents(self) -> tuple[str, ...]:
        """The `socio` values that are documents, as `socios.cpf_cnpj_socio` writes them."""
        return tuple(d for d in (partner_document(v) for v in self.socio) if d is not None)

    @property
    def partner_names(self) -> tuple[str, ...]:
        """The `socio` values that are names (with a word to search)."""
        return tuple(v for v in self.socio if partner_document(v) is None and _has_word(v))

    def digest(self) -> str:
        """A short fingerprint of the filters: a cursor only continues the search it came from."""
        encoded = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]


def _pieces(text: str) -> list[str]:
    """The runs of letters and digits: how many words `cnpj.search_words` will see."""
    return [piece for piece in re.split(r"[^\w]|_", text) if piece]


def _has_word(text: str) -> bool:
    return bool(_pieces(text))


def partner_document(value: str) -> str | None:
    """A partner's document as the files write it, or None when the value is a name: a CPF
    of 11 digits is masked as the Receita masks it (`***` + digits 4-9 + `**`); a CNPJ of 14
    characters and an already masked CPF are kept."""
    compact = re.sub(r"[.\-/\s]", "", value).upper()
    if _MASKED_CPF.match(compact):
        return compact
    if re.fullmatch(r"\d{11}", compact):
        return f"***{compact[3:9]}**"
    if re.fullmatch(r"[0-9A-Z]{12}\d{2}", compact) and any(c.isdigit() for c in compact[:12]):
        return compact
    return None


@dataclass(frozen=True)
class _Test:
    """One condition of a branch, whether it reads the company (alias `c`), and whether
    the branch is better driven by the secondary activities (`secondary`, alias `s`) or
    by the companies (`by_company`) than by the establishments."""

    condition: sql.Composable
    company: bool = False
    secondary: bool = False
    by_company: bool = False


@dataclass(frozen=True)
class _Values:
    """How filter values reach the SQL: bound parameters (a page or an export) or the
    arguments of `cnpj_current.search` (with NULL meaning 'no filter')."""

    release: sql.Composable
    value: Callable[[str], sql.Composable]
    in_function: bool


def _member(column: sql.Composable, value: sql.Composable, many: bool) -> sql.Composed:
    template = "{} = ANY({})" if many else "{} = {}"
    return sql.SQL(template).format(column, value)


def _e(column: str) -> sql.Identifier:
    return sql.Identifier("e", column)


def _release_rows(table: str, release: sql.Composable) -> sql.Composed:
    return sql.SQL("SELECT 1 FROM {} AS s WHERE s.release = {}").format(
        tables.qualified(table), release
    )


def _cnae_tests(values: _Values, many: bool) -> list[_Test]:
    """Principal, or secondary from cnpj.cnaes_secundarias, or, while the release has no
    rows there yet, secondary split from the establishments' text column."""
    code = values.value("cnae")
    rows_exist = sql.SQL("EXISTS ({})").format(
        _release_rows(CNAES_SECUNDARIAS.name, values.release)
    )
    secondary = sql.SQL("{rows_exist} AND {member}").format(
        rows_exist=rows_exist, member=_member(sql.Identifier("s", "cnae"), code, many)
    )
    split = sql.SQL(
        "NOT {rows_exist} AND EXISTS (SELECT 1 FROM {codes} AS x WHERE {member})"
    ).format(
        rows_exist=rows_exist,
        codes=codes_of(_e(SOURCE_COLUMN)),
        member=_member(sql.Identifier("x", "cnae"), code, many),
    )
    return [
        _Test(_member(_e("cnae_fiscal_principal"), code, many)),
        _Test(secondary, secondary=True),
        _Test(split),
    ]


def _name_tests(name: sql.Composable, mixed: bool) -> list[_Test]:
    """Every word in the razao social; or in the nome fantasia; or (`mixed`, a name of
    several words) each word in one of them, which needs a word in each."""
    words = sql.SQL("{}({})").format(words_function(), name)
    patterns = sql.SQL("{}({})").format(function("search_patterns"), name)
    razao = sql.SQL("{}(c.razao_social)").format(words_function())
    fantasia = sql.SQL("{}(e.nome_fantasia)").format(words_function())
    fold = function("search_fold")
    tests = [  # the first, driven by the establishments, carries "no name" in the function
        _Test(
            sql.SQL("{}(e.nome_fantasia) LIKE ALL ({}) AND {} @> {}").format(
                fold, patterns, fantasia, words
            )
        ),
        _Test(
            sql.SQL("{}(c.razao_social) LIKE ALL ({}) AND {} @> {}").format(
                fold, patterns, razao, words
            ),
            company=True,
            by_company=True,
        ),
    ]
    if mixed:
        condition = sql.SQL(
            "{fold}(concat_ws(' ', c.razao_social, e.nome_fantasia)) LIKE ALL ({p}) "
            "AND {r} && {w} AND {f} && {w} AND {r} || {f} @> {w}"
        ).format(fold=fold, p=patterns, r=razao, f=fantasia, w=words)
        tests.append(_Test(condition, company=True, by_company=True))
    return tests


def _partner_test(values: _Values, condition: sql.Composable) -> _Test:
    return _Test(
        sql.SQL(
            "e.cnpj_basico IN (SELECT p.cnpj_basico FROM {socios} AS p "
            "WHERE p.release = {release} AND {condition})"
        ).format(socios=tables.qualified(SOCIOS.name), release=values.release, condition=condition)
    )


def _document_test(values: _Values, many: bool) -> _Test:
    return _partner_test(
        values,
        _member(sql.Identifier("p", "cpf_cnpj_socio"), values.value("socio_documento"), many),
    )


def _partner_name_test(values: _Values, name: sql.Composable) -> _Test:
    words = sql.SQL("{}({})").format(words_function(), name)
    return _partner_test(
        values, sql.SQL("{}(p.nome_socio_razao_social) @> {}").format(words_function(), words)
    )


_SIMPLE = (  # filter, column, whether the column is the company's
    ("uf", "uf", False),
    ("municipio", "municipio", False),
    ("situacao", "situacao_cadastral", False),
    ("natureza", "natureza_juridica", True),
)


def _page_groups(filters: SearchFilters, values: _Values) -> list[list[_Test]]:
    """The AND of groups, each an OR of tests, for the filters given (bound parameters)."""
    groups: list[list[_Test]] = []
    for name, column, company in _SIMPLE:
        chosen = getattr(filters, name)
        if chosen:
            alias = "c" if company else "e"
            target = sql.Identifier(alias, column)
            groups.append([_Test(_member(target, values.value(name), len(chosen) > 1), company)])
    if filters.matriz:
        groups.append([_Test(sql.SQL("e.identificador_matriz_filial = '1'"))])
    if filters.cnae:
        groups.append(_cnae_tests(values, len(filters.cnae) > 1))
    if filters.name:
        groups.append(_name_tests(values.value("name"), len(_pieces(filters.name)) > 1))
    if filters.socio:
        partners = []
        documents = filters.partner_documents
        if documents:
            partners.append(_document_test(values, len(documents) > 1))
        partners += [
            _partner_name_test(values, values.value(f"socio_nome_{n}"))
            for n in range(len(filters.partner_names))
        ]
        groups.append(partners)
    return groups


def _function_groups(values: _Values) -> list[list[_Test]]:
    """Every filter, guarded by its argument: NULL (or false) filters nothing. Inlined
    with constant arguments, PostgreSQL folds the guards away."""

    def optional(argument: str, tests: list[_Test]) -> list[_Test]:
        given = sql.SQL("{} IS NOT NULL").format(values.value(argument))
        first, *others = tests
        guarded = [
            replace(first, condition=sql.SQL("(NOT {} OR {})").format(given, first.condition))
        ]
        guarded += [
            replace(t, condition=sql.SQL("({} AND {})").format(given, t.condition)) for t in others
        ]
        return guarded

    groups = [
        optional(
            name,
            [_Test(_member(sql.Identifier("c" if co else "e", col), values.value(name), True), co)],
        )
        for name, col, co in _SIMPLE
    ]
    groups.append(
        [
            _Test(
                sql.SQL("(NOT {} OR e.identificador_matriz_filial = '1')").format(
                    values.value("matriz")
                )
            )
        ]
    )
    groups.append(optional("cnae", _cnae_tests(values, True)))
    groups.append(optional("name", _name_tests(values.value("name"), mixed=True)))
    groups.append(optional("socio_documento", [_document_test(values, True)]))
    groups.append(optional("socio_nome", [_partner_name_test(values, values.value("socio_nome"))]))
    return groups


def _branch(tests: tuple[_Test, ...], values: _Values, after: bool, limit: bool) -> sql.Composed:
    """The distinct keys of the establishments passing every test, ordered by CNPJ.

    A secondary-CNAE branch reads the code's rows of cnaes_secundarias in CNPJ order (its
    index), a razao-social branch the companies (their word index, or their key in CNPJ
    order), and each looks the establishments up through a lateral fenced by OFFSET 0:
    joined plainly, the planner misjudged the join's rows and walked the establishments
    (a merge join read 87 k of them for 21 rows; a rare word scanned all 18 M).
    """
    lookup = sql.SQL(
        "CROSS JOIN LATERAL (SELECT * FROM {establishments} AS e0 WHERE e0.release = {d}.release "
        "AND e0.cnpj_basico = {d}.cnpj_basico{rest} OFFSET 0) AS e"
    )
    establishments = tables.qualified(ESTABELECIMENTOS.name)
    company_join = any(t.company for t in tests)
    if any(t.secondary for t in tests):
        driver = "s"
        keys = [sql.Identifier("s", c) for c in KEY]
        source = sql.SQL("{} AS s ").format(
            tables.qualified(CNAES_SECUNDARIAS.name)
        ) + lookup.format(
            establishments=establishments,
            d=sql.Identifier("s"),
            rest=sql.SQL(" AND e0.cnpj_ordem = s.cnpj_ordem AND e0.cnpj_dv = s.cnpj_dv"),
        )
    elif any(t.by_company for t in tests):
        driver = "c"
        keys = [
            sql.Identifier("c", KEY[0]),
            sql.Identifier("e", KEY[1]),
            sql.Identifier("e", KEY[2]),
        ]
        source = sql.SQL("{} AS c ").format(tables.qualified(EMPRESAS.name)) + lookup.format(
            establishments=establishments, d=sql.Identifier("c"), rest=sql.SQL("")
        )
        company_join = False
    else:
        driver = "e"
        keys = [sql.Identifier("e", c) for c in KEY]
        source = sql.SQL("{} AS e").format(establishments)
    columns = sql.SQL(", ").join(keys)
    company = sql.SQL(
        " LEFT JOIN {empresas} AS c ON c.release = e.release AND c.cnpj_basico = e.cnpj_basico"
    ).format(empresas=tables.qualified(EMPRESAS.name))
    conditions = [sql.SQL("{}.release = {}").format(sql.Identifier(driver), values.release)]
    if after:
        bound = [values.value(f"after_{k}") for k in ("basico", "ordem", "dv")]
        conditions.append(sql.SQL("{} >= {}").format(keys[0], bound[0]))
        conditions.append(sql.SQL("({}) > ({}, {}, {})").format(columns, *bound))
    conditions += [t.condition for t in tests]
    return sql.SQL(
        "(SELECT DISTINCT {columns} FROM {source}{company} "
        "WHERE {conditions} ORDER BY 1, 2, 3{limit})"
    ).format(
        columns=columns,
        source=source,
        company=company if company_join else sql.SQL(""),
        conditions=sql.SQL(" AND ").join(conditions),
        limit=sql.SQL(" LIMIT {}").format(values.value("limit")) if limit else sql.SQL(""),
    )


def _lookup(table: str, code: str) -> sql.Composed:
    return sql.SQL(
        "(SELECT l.descricao FROM {table} AS l WHERE l.release = e.release AND l.codigo = {code} "
        "ORDER BY l._subbatch_id LIMIT 1)"
    ).format(table=tables.qualified(table), code=sql.Identifier(*code.split(".")))


def _query(groups: list[list[_Test]], values: _Values, after: bool, limit: bool) -> sql.Composed:
    """The rows of the first `limit` keys of the branches' union, with their names and labels."""
    branches = [_branch(combo, values, after, limit) for combo in product(*groups)]
    keys = sql.SQL(
        "SELECT DISTINCT u.cnpj_basico, u.cnpj_ordem, u.cnpj_dv FROM ({union}) AS u "
        "ORDER BY 1, 2, 3{limit}"
    ).format(
        union=sql.SQL(" UNION ALL ").join(branches),
        limit=sql.SQL(" LIMIT {}").format(values.value("limit")) if limit else sql.SQL(""),
    )
    columns = sql.SQL(
        "e.release, e.cnpj_basico || e.cnpj_ordem || e.cnpj_dv AS cnpj, c.razao_social, "
        "e.nome_fantasia, e.identificador_matriz_filial, "
        "lm.descricao AS identificador_matriz_filial_descricao, "
        "e.situacao_cadastral, ls.descricao AS situacao_cadastral_descricao, e.uf, e.municipio, "
        "{municipio} AS municipio_descricao, e.cnae_fiscal_principal, "
        "{cnae} AS cnae_fiscal_principal_descricao, c.natureza_juridica, "
        "{natureza} AS natureza_juridica_descricao"
    ).format(
        municipio=_lookup("municipios", "e.municipio"),
        cnae=_lookup("cnaes", "e.cnae_fiscal_principal"),
        natureza=_lookup("naturezas", "c.natureza_juridica"),
    )
    return sql.SQL(
        "SELECT {columns} FROM ({keys}) AS k "
        "CROSS JOIN LATERAL (SELECT * FROM {establishments} AS e1 WHERE e1.release = {release} "
        "AND e1.cnpj_basico = k.cnpj_basico AND e1.cnpj_ordem = k.cnpj_ordem "
        "AND e1.cnpj_dv = k.cnpj_dv ORDER BY e1._subbatch_id LIMIT 1) AS e "
        "LEFT JOIN LATERAL (SELECT c1.razao_social, c1.natureza_juridica FROM {empresas} AS c1 "
        "WHERE c1.release = {release} AND c1.cnpj_basico = k.cnpj_basico "
        "ORDER BY c1._subbatch_id LIMIT 1) AS c ON true "
        "{matriz_label} {situacao_label} "
        "ORDER BY k.cnpj_basico, k.cnpj_ordem, k.cnpj_dv"
    ).format(
        columns=columns,
        keys=keys,
        establishments=tables.qualified(ESTABELECIMENTOS.name),
        empresas=tables.qualified(EMPRESAS.name),
        release=values.release,
        matriz_label=label_join(
            IDENTIFICADOR_MATRIZ_FILIAL, "lm", "e", _e("identificador_matriz_filial")
        ),
        situacao_label=label_join(SITUACAO_CADASTRAL, "ls", "e", _e("situacao_cadastral")),
    )


FUNCTION_ARGUMENTS = (
    ("name", "text", "NULL"),
    ("uf", "text[]", "NULL"),
    ("municipio", "text[]", "NULL"),
    ("cnae", "text[]", "NULL"),
    ("natureza", "text[]", "NULL"),
    ("situacao", "text[]", "NULL"),
    ("socio_documento", "text[]", "NULL"),
    ("socio_nome", "text", "NULL"),
    ("matriz", "boolean", "false"),
)
"""`cnpj_current.search`'s arguments, named as psql users pass them."""


def function_body(release: str) -> sql.Composed:
    """The search over one release with every filter an argument of the SQL function."""
    values = _Values(
        sql.Literal(release), lambda name: sql.Identifier("search", name), in_function=True
    )
    return _query(_function_groups(values), values, after=False, limit=False)


def _page_parameters(filters: SearchFilters) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for name in ("uf", "municipio", "situacao", "natureza", "cnae"):
        chosen = getattr(filters, name)
        if chosen:
            parameters[name] = list(chosen) if len(chosen) > 1 else chosen[0]
    if filters.name:
        parameters["name"] = filters.name
    documents = filters.partner_documents
    if documents:
        parameters["socio_documento"] = list(documents) if len(documents) > 1 else documents[0]
    for n, name in enumerate(filters.partner_names):
        parameters[f"socio_nome_{n}"] = name
    return parameters


def _page_values() -> _Values:
    return _Values(sql.Placeholder("release"), sql.Placeholder, in_function=False)


@dataclass(frozen=True)
class Cursor:
    """Where a search continues: its release, its filters' digest and the last CNPJ given."""

    release: str
    digest: str
    after: str

    def encode(self) -> str:
        data = json.dumps(
            {"v": _CURSOR_VERSION, "r": self.release, "f": self.digest, "a": self.after}
        )
        return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if data["v"] != _CURSOR_VERSION:
                raise ValueError("version")
            return cls(str(data["r"]), str(data["f"]), str(data["a"]))
        except (ValueError, KeyError, TypeError, binascii.Error) as error:
            raise SearchError(f"not a search cursor: {text[:40]!r}") from error


def _has_release(connection: psycopg.Connection, release: str) -> bool:
    statement = sql.SQL("SELECT EXISTS ({})").format(
        _release_rows(ESTABELECIMENTOS.name, sql.Literal(release))
    )
    row = connection.execute(statement).fetchone()
    return bool(row and row[0])


def resolve_release(connection: psycopg.Connection, release: str | None) -> str:
    """The release to read: the one named, or the published one; refused if not loaded."""
    chosen = release or published_release(connection)
    if chosen is None:
        raise SearchError("no release is published yet; name one with --release YYYY-MM")
    if not _has_release(connection, chosen):
        raise SearchError(f"release {chosen} is not loaded (or was dropped by retention)")
    return chosen


def search_page(
    connection: psycopg.Connection,
    filters: SearchFilters,
    limit: int = 20,
    cursor: str | None = None,
    release: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of matching establishments ordered by CNPJ, and the cursor of the next page
    (None after the last). A cursor continues on its own release, whatever was published
    since; a cursor of other filters, or of a release no longer kept, is refused."""
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchError(f"--limit must be between 1 and {MAX_LIMIT}, not {limit}")
    after = Cursor.decode(cursor) if cursor else None
    ensure_functions(connection)
    if after is not None:
        if after.digest != filters.digest():
            raise SearchError("this cursor belongs to a search with other filters")
        if release is not None and release != after.release:
            raise SearchError(f"this cursor reads release {after.release}, not {release}")
        if not _has_release(connection, after.release):
            raise SearchError(
                f"the release of this cursor, {after.release}, is no longer kept: "
                "start the search again (without --cursor)"
            )
        chosen = after.release
    else:
        chosen = resolve_release(connection, release)
    values = _page_values()
    parameters = _page_parameters(filters) | {"release": chosen, "limit": limit + 1}
    if after is not None:
        parameters |= {
            "after_basico": after.after[:8],
            "after_ordem": after.after[8:12],
            "after_dv": after.after[12:],
        }
    statement = _query(_page_groups(filters, values), values, after is not None, limit=True)
    with connection.transaction(), connection.cursor(row_factory=dict_row) as db:
        db.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        rows = db.execute(statement, parameters, prepare=False).fetchall()
    following = None
    if len(rows) > limit:
        rows = rows[:limit]
        following = Cursor(chosen, filters.digest(), rows[-1]["cnpj"]).encode()
    return rows, following


def stream_rows(
    connection: psycopg.Connection,
    filters: SearchFilters,
    release: str | None = None,
    batch: int = 10_000,
) -> Iterator[dict[str, Any]]:
    """Every matching row, ordered by CNPJ, read by one query through a server-side cursor
    (memory stays at one batch), all from one release. The connection must not be in
    autocommit mode elsewhere in use: the cursor lives in a transaction of its own."""
    chosen = resolve_release(connection, release)
    ensure_functions(connection)
    values = _page_values()
    statement = _query(_page_groups(filters, values), values, after=False, limit=False)
    parameters = _page_parameters(filters) | {"release": chosen}
    with (
        connection.transaction(),
        connection.cursor(name="search_export", row_factory=dict_row) as db,
    ):
        db.itersize = batch
        db.execute(statement, parameters)
        yield from db
