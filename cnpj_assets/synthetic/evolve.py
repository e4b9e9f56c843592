"""The next month of a synthetic release: realistic changes at realistic rates, recorded.

`cnpj-assets fake-release --release 2026-11 --previous DIR/2026-10` reads a release's
zips and writes the next month's: a few establishments open (new companies and new
branches), close (turn `08`, baixada), re-open, move, change activity or contact, or
are gone; companies are renamed or change capital, size or legal nature; partners come
and go or change qualification; companies enter and leave the Simples and the MEI. The
rates are monthly shares from the government's yearly figures (cnpj-layout.md: ~0.5% of
establishments open a month, ~0.3% close). Every change is written to `changes.json`
next to the zips, with the columns whose value (as loaded: dates and decimals typed,
empty as NULL) it changed: the ground truth the `cnpj/changes` asset is tested against.

It works on the files, not on the generator, so it evolves any release without quirks
(its records are read with the csv module and written back in the same dialect), and
each entity changes in at most one way a month, so each change is one recorded kind.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

from cnpj_assets.cnpj_number import check_digits
from cnpj_assets.specs import EMPRESAS, ESTABELECIMENTOS, SIMPLES, SOCIOS, TABLES, ColumnKind
from cnpj_assets.synthetic.csvformat import ENCODING, join_record
from cnpj_assets.synthetic.release import extraction_date, member_date

Record = list[str]
CHANGES_FILE = "changes.json"


@dataclass(frozen=True)
class MonthlyRates:
    """Share of the rows that change each way in a month."""

    openings: float = 0.005  # new establishments, of establishments
    closures: float = 0.003  # establishments turning to 08 (baixada)
    reopenings: float = 0.0002
    gone: float = 0.0001  # establishments absent from the next release
    moves: float = 0.002
    activity: float = 0.001
    contact: float = 0.003  # telephone or e-mail
    renames: float = 0.0005  # companies
    capital: float = 0.001
    size: float = 0.0005
    legal_nature: float = 0.0001
    partners_in: float = 0.002  # of partner rows: a new partner beside this one
    partners_out: float = 0.0015
    qualification: float = 0.0005
    simples_out: float = 0.002  # of Simples rows opted in
    simples_in: float = 0.002  # of Simples rows opted out
    mei_out: float = 0.001
    mei_in: float = 0.001

    def scaled(self, factor: float) -> MonthlyRates:
        """The same rates times `factor`: a small test release still sees every kind."""
        return replace(self, **{k: v * factor for k, v in self.__dict__.items()})


@dataclass(frozen=True)
class Change:
    table: str
    cnpj: str
    kind: str
    columns: tuple[str, ...]


def typed(kind: ColumnKind, value: str | None) -> object:
    """A value as the loader stores it: what decides whether it changed."""
    if value is None or value == "":
        return None
    if kind is ColumnKind.DATE:
        if len(value) != 8 or not value.isdigit() or not "18000101" <= value <= "21001231":
            return None
        try:
            return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:
            return None
    if kind is ColumnKind.DECIMAL:
        try:
            return Decimal(value.replace(".", "").replace(",", "."))
        except InvalidOperation:
            return None
    return value


def changed_columns(table: str, old: Record, new: Record) -> tuple[str, ...]:
    spec = TABLES[table]
    return tuple(
        c.name
        for c, before, after in zip(spec.columns, old, new, strict=True)
        if typed(c.kind, before) != typed(c.kind, after)
    )


def _read(zip_path: Path) -> Iterator[Record]:
    with zipfile.ZipFile(zip_path) as archive:
        (info,) = archive.infolist()
        text = archive.read(info).decode(ENCODING)
    yield from csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"')


def _write(zip_path: Path, member: str, records: list[Record], day: dt.date) -> None:
    body = "".join(join_record(r) + "\n" for r in records).encode(ENCODING)
    info = zipfile.ZipInfo(member, date_time=(day.year, day.month, day.day, 0, 0, 0))
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(info, body)


@dataclass
class _Month:
    """What the evolution needs while it goes through the files, and what it did."""

    rng: random.Random
    rates: MonthlyRates
    day: dt.date
    codes: dict[str, list[str]]  # lookup -> its codes
    basicos: set[str] = field(default_factory=set)
    ordens: dict[str, int] = field(default_factory=dict)  # basico -> highest ordem
    new_companies: list[str] = field(default_factory=list)  # their cnpj_basico
    changes: list[Change] = field(default_factory=list)

    @property
    def date(self) -> str:
        return self.day.strftime("%Y%m%d")

    def other_code(self, lookup: str, current: str) -> str:
        return self.rng.choice([c for c in self.codes[lookup] if c != current])

    def new_basico(self) -> str:
        while True:
            basico = f"{self.rng.randrange(10**8):08d}"
            if basico not in self.basicos:
                self.basicos.add(basico)
                return basico

    def record(
        self, table: str, cnpj: str, kind: str, old: Record | None, new: Record | None
    ) -> None:
        columns = changed_columns(table, old, new) if old and new else ()
        if old and new and not columns:
            return
        self.changes.append(Change(table, cnpj, kind, columns))


def _column(table: str, name: str) -> int:
    return TABLES[table].column_names.index(name)


E = {name: _column(ESTABELECIMENTOS.name, name) for name in ESTABELECIMENTOS.column_names}
C = {name: _column(EMPRESAS.name, name) for name in EMPRESAS.column_names}
P = {name: _column(SOCIOS.name, name) for name in SOCIOS.column_names}
S = {name: _column(SIMPLES.name, name) for name in SIMPLES.column_names}


def _identity(record: Record) -> tuple[str, ...]:
    """What identifies a partner of a company (see the changes asset): masked CPFs repeat,
    so the name and the kind of partner go with it."""
    return tuple(
        record[P[c]]
        for c in ("cnpj_basico", "identificador_socio", "cpf_cnpj_socio", "nome_socio_razao_social")
    )


def _cnpj(record: Record) -> str:
    return record[E["cnpj_basico"]] + record[E["cnpj_ordem"]] + record[E["cnpj_dv"]]


def _opened(month: _Month, template: Record) -> Record:
    """A new establishment shaped like `template`: a branch of its company, or the head
    office of a new company (with its empresas row)."""
    new = list(template)
    if month.rng.random() < 0.5:
        basico = template[E["cnpj_basico"]]
        ordem = month.ordens.get(basico, 1) + 1
        month.ordens[basico] = ordem
        new[E["identificador_matriz_filial"]] = "2"
    else:
        basico, ordem = month.new_basico(), 1
        month.ordens[basico] = 1
        new[E["identificador_matriz_filial"]] = "1"
        month.new_companies.append(basico)  # its empresas row is written with the companies
    new[E["cnpj_basico"]], new[E["cnpj_ordem"]] = basico, f"{ordem:04d}"
    new[E["cnpj_dv"]] = check_digits(basico + f"{ordem:04d}")
    new[E["nome_fantasia"]] = f"NOVA UNIDADE {month.rng.randrange(10**6):06d}"
    new[E["situacao_cadastral"]], new[E["data_situacao_cadastral"]] = "02", month.date
    new[E["motivo_situacao_cadastral"]] = "00"
    new[E["data_inicio_atividade"]] = month.date
    return new


def _evolve_establishment(month: _Month, record: Record) -> list[Record]:
    """The record as next month has it (none when gone), plus any new establishment."""
    rates, rng, old = month.rates, month.rng, record
    new = list(record)
    draw = rng.random()
    bands = [
        ("opened", rates.openings),
        ("gone", rates.gone),
        ("closed", rates.closures),
        ("reopened", rates.reopenings),
        ("moved", rates.moves),
        ("activity_changed", rates.activity),
        ("other_changed", rates.contact),
    ]
    kind = None
    for name, rate in bands:
        if draw < rate:
            kind = name
            break
        draw -= rate
    status = new[E["situacao_cadastral"]]
    if kind == "opened":
        opened = _opened(month, record)
        month.record(ESTABELECIMENTOS.name, _cnpj(opened), "opened", None, opened)
        return [record, opened]
    if kind == "gone":
        month.record(ESTABELECIMENTOS.name, _cnpj(record), "gone", record, None)
        return []
    if kind == "closed" and status != "08":
        new[E["situacao_cadastral"]], new[E["data_situacao_cadastral"]] = "08", month.date
        new[E["motivo_situacao_cadastral"]] = month.other_code(
            "motivos", new[E["motivo_situacao_cadastral"]]
        )
        kind = "status_changed"
    elif kind == "reopened" and status == "08":
        new[E["situacao_cadastral"]], new[E["data_situacao_cadastral"]] = "02", month.date
        new[E["motivo_situacao_cadastral"]] = "00"
        kind = "status_changed"
    elif kind == "moved":
        new[E["logradouro"]] = f"RUA NOVA {rng.randrange(1, 9999)}"
        new[E["numero"]] = str(rng.randrange(1, 5000))
        new[E["bairro"]] = f"BAIRRO {rng.randrange(1, 999)}"
        new[E["cep"]] = f"{rng.randrange(10**8):08d}"
        new[E["municipio"]] = month.other_code("municipios", new[E["municipio"]])
    elif kind == "activity_changed":
        new[E["cnae_fiscal_principal"]] = month.other_code("cnaes", new[E["cnae_fiscal_principal"]])
    elif kind == "other_changed":
        new[E["telefone_1"]] = f"{rng.randrange(2 * 10**7, 10**8)}"
        new[E["correio_eletronico"]] = f"CONTATO{rng.randrange(10**6)}@EXEMPLO.COM.BR"
    else:
        return [record]
    month.record(ESTABELECIMENTOS.name, _cnpj(record), kind, old, new)
    return [new]


def _evolve_company(month: _Month, record: Record) -> Record:
    rates, rng = month.rates, month.rng
    new = list(record)
    draw = rng.random()
    if draw < rates.renames:
        new[C["razao_social"]] = f"{record[C['razao_social']]} RENOMEADA"
        kind = "renamed"
    elif (draw := draw - rates.renames) < rates.capital:
        capital = typed(ColumnKind.DECIMAL, record[C["capital_social"]]) or Decimal(1000)
        new[C["capital_social"]] = f"{capital * 2 + 1:.2f}".replace(".", ",")
        kind = "capital_changed"
    elif (draw := draw - rates.capital) < rates.size:
        new[C["porte_empresa"]] = rng.choice(
            [p for p in ("00", "01", "03", "05") if p != record[C["porte_empresa"]]]
        )
        kind = "size_changed"
    elif draw - rates.size < rates.legal_nature:
        new[C["natureza_juridica"]] = month.other_code("naturezas", record[C["natureza_juridica"]])
        kind = "legal_nature_changed"
    else:
        return record
    month.record(EMPRESAS.name, record[C["cnpj_basico"]], kind, record, new)
    return new


def _evolve_partner(month: _Month, record: Record, unique: bool) -> list[Record]:
    rates, rng = month.rates, month.rng
    draw = rng.random()
    basico = record[P["cnpj_basico"]]
    if draw < rates.partners_in:
        partner = list(record)
        partner[P["identificador_socio"]] = "2"
        partner[P["nome_socio_razao_social"]] = f"SOCIO NOVO {rng.randrange(10**7):07d}"
        partner[P["cpf_cnpj_socio"]] = f"***{rng.randrange(10**6):06d}**"
        partner[P["data_entrada_sociedade"]] = month.date
        month.record(SOCIOS.name, basico, "partner_in", None, partner)
        return [record, partner]
    if not unique:  # a repeated partner identity cannot leave or change alone
        return [record]
    if draw - rates.partners_in < rates.partners_out:
        month.record(SOCIOS.name, basico, "partner_out", record, None)
        return []
    if draw - rates.partners_in - rates.partners_out < rates.qualification:
        new = list(record)
        new[P["qualificacao_socio"]] = month.other_code(
            "qualificacoes", record[P["qualificacao_socio"]]
        )
        month.record(SOCIOS.name, basico, "qualification_changed", record, new)
        return [new]
    return [record]


def _evolve_simples(month: _Month, record: Record) -> Record:
    rates, rng = month.rates, month.rng
    new = list(record)
    simples, mei = record[S["opcao_pelo_simples"]] == "S", record[S["opcao_mei"]] == "S"
    draw = rng.random()
    if simples and draw < rates.simples_out:
        new[S["opcao_pelo_simples"]], new[S["data_exclusao_simples"]] = "N", month.date
        kind = "simples_out"
    elif not simples and draw < rates.simples_in:
        new[S["opcao_pelo_simples"]], new[S["data_opcao_simples"]] = "S", month.date
        new[S["data_exclusao_simples"]] = "00000000"
        kind = "simples_in"
    elif mei and rng.random() < rates.mei_out:
        new[S["opcao_mei"]], new[S["data_exclusao_mei"]] = "N", month.date
        kind = "mei_out"
    elif not mei and rng.random() < rates.mei_in:
        new[S["opcao_mei"]], new[S["data_opcao_mei"]] = "S", month.date
        new[S["data_exclusao_mei"]] = "00000000"
        kind = "mei_in"
    else:
        return record
    month.record(SIMPLES.name, record[S["cnpj_basico"]], kind, record, new)
    return new


def evolve_release(
    previous: Path, release: str, out_dir: Path, seed: int = 0, rates: MonthlyRates | None = None
) -> list[Change]:
    """Write `out_dir/<release>/` as the month after `previous`, and its changes.json."""
    previous = Path(previous)
    day = extraction_date(release)
    folder = Path(out_dir) / release
    folder.mkdir(parents=True, exist_ok=True)
    codes = {
        name: [r[0] for r in _read(previous / spec.zip_names()[0]) if r]
        for name, spec in TABLES.items()
        if spec.is_lookup
    }
    month = _Month(random.Random(seed), rates or MonthlyRates(), day, codes)
    for zip_name in EMPRESAS.zip_names():
        month.basicos.update(r[C["cnpj_basico"]] for r in _read(previous / zip_name) if r)
    for zip_name in ESTABELECIMENTOS.zip_names():
        for r in _read(previous / zip_name):
            if r:
                basico, ordem = r[E["cnpj_basico"]], int(r[E["cnpj_ordem"]] or 0)
                month.ordens[basico] = max(month.ordens.get(basico, 0), ordem)
    identities = Counter(
        _identity(r) for zip_name in SOCIOS.zip_names() for r in _read(previous / zip_name) if r
    )

    def write(spec_name: str, number: int, zip_name: str, records: list[Record]) -> None:
        member = TABLES[spec_name].member_name(number, member_date(day))
        _write(folder / zip_name, member, records, day)

    for name, spec in TABLES.items():
        if spec.is_lookup:
            write(
                name,
                0,
                spec.zip_names()[0],
                [r for r in _read(previous / spec.zip_names()[0]) if r],
            )
    for number, zip_name in enumerate(ESTABELECIMENTOS.zip_names()):
        records = [
            n for r in _read(previous / zip_name) if r for n in _evolve_establishment(month, r)
        ]
        write(ESTABELECIMENTOS.name, number, zip_name, records)
    for number, zip_name in enumerate(EMPRESAS.zip_names()):
        records = [_evolve_company(month, r) for r in _read(previous / zip_name) if r]
        if number == len(EMPRESAS.zip_names()) - 1:
            records += [_new_company(month, basico, records) for basico in month.new_companies]
        write(EMPRESAS.name, number, zip_name, records)
    for number, zip_name in enumerate(SOCIOS.zip_names()):
        records = [
            n
            for r in _read(previous / zip_name)
            if r
            for n in _evolve_partner(month, r, identities[_identity(r)] == 1)
        ]
        write(SOCIOS.name, number, zip_name, records)
    (simples_zip,) = SIMPLES.zip_names()
    write(
        SIMPLES.name,
        0,
        simples_zip,
        [_evolve_simples(month, r) for r in _read(previous / simples_zip) if r],
    )
    (folder / CHANGES_FILE).write_text(
        json.dumps(
            {
                "release": release,
                "previous_release": previous.name,
                "seed": seed,
                "changes": [c.__dict__ | {"columns": list(c.columns)} for c in month.changes],
            },
            indent=1,
        )
    )
    return month.changes


def _new_company(month: _Month, basico: str, companies: list[Record]) -> Record:
    """The empresas row of a company opened this month, shaped like an existing one."""
    new = list(month.rng.choice(companies))
    new[C["cnpj_basico"]] = basico
    new[C["razao_social"]] = f"EMPRESA NOVA {basico} LTDA"
    return new
