"""Pools of realistic, pre-quoted values: the generator's speed comes from here.

Building a realistic value (a date skewed to recent years, an address whose CEP, DDD and
municipio agree with its state) is slow in Python; picking one from a list is not. So a
release builds, once, pools of POOL_SIZE entries drawn with real-looking frequencies,
and the row builders pick from them with `getrandbits(POOL_BITS)`. Entries that cover
several adjacent columns are stored already quoted and joined with `;`, so a record is
one f-string. Codes are drawn from the lookups, so facts reference existing rows except
for the deliberate orphans (lookups.ORPHAN_CODES).
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from cnpj_assets.synthetic import words
from cnpj_assets.synthetic.lookups import ABROAD_MUNICIPIO, BRAZIL, ORPHAN_CODES, Lookups

POOL_BITS = 12
POOL_SIZE = 1 << POOL_BITS
NULL_DATE = "00000000"
MISSING_REPRESENTATIVE = ("***000000**", "", "00")  # masked CPF, name, qualification
ORPHAN_SHARE = 0.005  # share of statuses / addresses drawn with an orphan code

_SIMPLES_START = dt.date(2007, 7, 1)
_MEI_START = dt.date(2009, 7, 1)
_OLDEST = dt.date(1966, 1, 1)
T = TypeVar("T")

_LTDA = (" LTDA", " LTDA", " LTDA ME", " LTDA EPP")
# (weight, natureza, qualificacao of the person in charge, first words of the razao social
#  or None for a person's name, suffixes, capital size, portes, has an ente federativo)
_NATURES = (
    (50, "2135", "50", None, ("",), "small", ("01", "01", "01", "05"), False),
    (28, "2062", "49", words.TRADES, _LTDA, "small", ("01", "03", "05"), False),
    (3, "2305", "65", words.TRADES, (" EIRELI",), "small", ("01", "03"), False),
    (2, "2240", "49", words.TRADES, (" LTDA",), "small", ("01", "05"), False),
    (2, "4124", "59", None, ("",), "none", ("05",), False),
    (1, "2054", "10", words.TRADES, (" S.A.", " S/A"), "huge", ("05",), False),
    (0.1, "2046", "16", words.TRADES, (" S.A.",), "huge", ("05",), False),
    (6, "3999", "16", words.ASSOCIATIONS, ("",), "none", ("05", "00"), False),
    (2, "3085", "19", words.CONDOMINIUMS, ("",), "none", ("05",), False),
    (1, "3220", "16", words.CHURCHES, ("",), "none", ("05",), False),
    (0.5, "2143", "16", words.COOPERATIVES, (" LTDA",), "small", ("05",), False),
    (0.3, "1244", "05", words.PUBLIC_BODIES[:1], ("",), "none", ("05",), True),
    (0.5, "1031", "05", words.PUBLIC_BODIES, ("",), "none", ("05",), True),
)  # fmt: skip


def _ascii(text: str) -> str:
    """Text without its accents, as in an e-mail address."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def masked_cpf(rng: random.Random) -> str:
    """A CPF as the open data shows it: the 6 middle digits only."""
    return f"***{rng.randrange(10**6):06d}**"


def quoted(*fields: str) -> str:
    """Adjacent fields as they appear in a record: each quoted, joined by `;`."""
    return ";".join(f'"{field}"' for field in fields)


def _yyyymmdd(day: dt.date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _pool(rng: random.Random, make: Callable[[random.Random], T]) -> tuple[T, ...]:
    return tuple(make(rng) for _ in range(POOL_SIZE))


def _weighted(rng: random.Random, choices: Sequence[tuple[float, T]]) -> T:
    return rng.choices([value for _, value in choices], [weight for weight, _ in choices])[0]


class DateMaker:
    """YYYYMMDD dates, denser in recent years as company openings are, never after extraction."""

    def __init__(self, extraction: dt.date) -> None:
        self.extraction = extraction

    def between(self, rng: random.Random, start: dt.date, end: dt.date | None = None) -> dt.date:
        first, last = start.toordinal(), (end or self.extraction).toordinal()
        return dt.date.fromordinal(first + int((last - first) * rng.random() ** 0.6))

    def text(self, rng: random.Random, start: dt.date = _OLDEST) -> str:
        return _yyyymmdd(self.between(rng, start))


Place = tuple[str, str, str]
"""An address in three quoted runs: cidade_exterior;pais, tipo..municipio, ddd_1..email."""


@dataclass(frozen=True)
class CompanyProfile:
    """What a company's legal nature implies for its empresas row."""

    head: str | None  # first words of the razao social; None: the razao is a person's name
    suffix: str  # " LTDA", " S.A.", ...
    tail: str  # natureza..ente_federativo, quoted and joined


@dataclass(frozen=True)
class Pools:
    """Every pool a release picks from; each tuple has POOL_SIZE entries."""

    first_names: tuple[str, ...]
    surnames: tuple[str, ...]
    business_names: tuple[str, ...]
    trades: tuple[str, ...]
    person_ids: tuple[str, ...]  # 11 digits ending a sole trader's razao social (its CPF)
    masked_cpfs: tuple[str, ...]
    foreign_names: tuple[str, ...]
    company_profiles: tuple[CompanyProfile, ...]
    trade_names: tuple[str, ...]  # nome_fantasia, quoted; about half empty
    statuses: tuple[str, ...]  # situacao;data;motivo
    places: tuple[Place, ...]
    start_dates: tuple[str, ...]  # quoted data_inicio_atividade
    recent_start_dates: tuple[str, ...]  # last 90 days: alphanumeric CNPJs are new (2026)
    activities: tuple[str, ...]  # cnae_fiscal_principal;cnae_fiscal_secundaria
    special_statuses: tuple[str, ...]  # situacao_especial;data_situacao_especial
    partner_profiles: tuple[tuple[str, str], ...]  # (identificador_socio, qualificacao..faixa)
    simples_options: tuple[str, ...]  # opcao_pelo_simples..data_exclusao_mei


class _PoolBuilder:
    """Draws the pools of one release from the seed, the lookups and the extraction date."""

    def __init__(self, rng: random.Random, lookups: Lookups, extraction: dt.date) -> None:
        self.rng = rng
        self.lookups = lookups
        self.dates = DateMaker(extraction)
        self.municipios = [
            code
            for code in lookups.codes("municipios")
            if code not in lookups.capitals and code != ABROAD_MUNICIPIO
        ]
        self.cnaes = lookups.codes("cnaes")
        self.countries = [code for code in lookups.codes("paises") if code != BRAZIL]
        names = dict(lookups.rows["municipios"])
        self.public_entities = [
            f"{names[code]} - {lookups.municipio_uf[code]}" for code in self.municipios[:500]
        ]

    def words(self, vocabulary: Sequence[str]) -> tuple[str, ...]:
        return _pool(self.rng, lambda rng: rng.choice(vocabulary))

    def build(self) -> Pools:
        rng = self.rng
        recent = self.dates.extraction - dt.timedelta(days=90)
        return Pools(
            first_names=self.words(words.FIRST_NAMES),
            surnames=self.words(words.SURNAMES),
            business_names=self.words(words.BUSINESS_NAMES),
            trades=self.words(words.TRADES),
            person_ids=_pool(rng, lambda r: f"{r.randrange(10**11):011d}"),
            masked_cpfs=_pool(rng, masked_cpf),
            foreign_names=self.words(words.FOREIGN_NAMES),
            company_profiles=_pool(rng, self.company_profile),
            trade_names=_pool(rng, self.trade_name),
            statuses=_pool(rng, self.status),
            places=_pool(rng, self.place),
            start_dates=_pool(rng, lambda r: f'"{self.dates.text(r)}"'),
            recent_start_dates=_pool(rng, lambda r: f'"{self.dates.text(r, recent)}"'),
            activities=_pool(rng, self.activity),
            special_statuses=_pool(rng, self.special_status),
            partner_profiles=_pool(rng, self.partner_profile),
            simples_options=_pool(rng, self.simples_option),
        )

    def capital(self, rng: random.Random, size: str) -> str:
        if size == "none":
            return "0,00"
        if size == "huge":
            return f"{rng.randrange(10**8, 10**10)},{rng.randrange(100):02d}"
        round_values = (1000, 2000, 5000, 10000, 20000, 30000, 50000, 100000, 500000, 1000000)
        if rng.random() < 0.1:
            return f"{rng.randrange(1000, 10**7)},{rng.randrange(100):02d}"
        return f"{rng.choice(round_values)},00"

    def company_profile(self, rng: random.Random) -> CompanyProfile:
        if rng.random() < 0.01:  # the long tail of the other legal natures
            natureza = rng.choice(self.lookups.codes("naturezas"))
            profile = (natureza, "05", words.TRADES, ("",), "small", ("05",), False)
        else:
            profile = _weighted(rng, [(nature[0], nature[1:]) for nature in _NATURES])
        natureza, qualificacao, heads, suffixes, capital, portes, public = profile
        ente = rng.choice(self.public_entities) if public else ""
        tail = quoted(natureza, qualificacao, self.capital(rng, capital), rng.choice(portes), ente)
        head = rng.choice(heads) if heads else None
        return CompanyProfile(head, rng.choice(suffixes), tail)

    def trade_name(self, rng: random.Random) -> str:
        if rng.random() < 0.5:
            return '""'
        return f'"{rng.choice(words.TRADES)} {rng.choice(words.BUSINESS_NAMES)}"'

    def status(self, rng: random.Random) -> str:
        if rng.random() < ORPHAN_SHARE:
            return quoted("08", self.dates.text(rng), ORPHAN_CODES["motivos"][0])
        situacao, motivos = _weighted(
            rng,
            (
                (0.50, ("02", ("00",))),
                (0.38, ("08", ("01", "01", "01", "01", "15", "02"))),
                (0.09, ("04", ("63", "63", "71", "73"))),
                (0.015, ("03", ("72", "81", "62"))),
                (0.015, ("01", ("11", "16", "34"))),
            ),
        )
        date = rng.choice((NULL_DATE, "0")) if situacao == "01" else self.dates.text(rng)
        return quoted(situacao, date, rng.choice(motivos))

    def place(self, rng: random.Random) -> Place:
        draw = rng.random()
        if draw < ORPHAN_SHARE:
            return self._abroad(rng)
        if draw < 2 * ORPHAN_SHARE:
            return self._domestic(rng, ORPHAN_CODES["municipios"][0], "SP")
        if draw < 0.35:
            municipio = rng.choice(self.lookups.capitals)
        else:
            municipio = rng.choice(self.municipios)
        return self._domestic(rng, municipio, self.lookups.municipio_uf[municipio])

    def _abroad(self, rng: random.Random) -> Place:
        if rng.random() < 0.3:
            pais, city = rng.choice(ORPHAN_CODES["paises"]), rng.choice(words.ORPHAN_COUNTRY_CITIES)
        else:
            pais, city = rng.choice(tuple(self.lookups.foreign_cities.items()))
        street = f"{rng.randrange(1, 999)} {rng.choice(words.FOREIGN_STREETS)}"
        address = quoted("", street, "", "", "", "", "EX", ABROAD_MUNICIPIO)
        return quoted(city, pais), address, quoted("", "", "", "", "", "", "")

    def _domestic(self, rng: random.Random, municipio: str, uf: str) -> Place:
        low, high = words.CEP_RANGES[uf]
        cep = f"{rng.randrange(low, high + 1):05d}{rng.randrange(1000):03d}"
        number = "S/N" if rng.random() < 0.08 else str(int(rng.paretovariate(0.8) * 20) % 9000 + 1)
        complement = rng.choice(words.COMPLEMENTS) if rng.random() < 0.45 else ""
        address = quoted(
            rng.choice(words.STREET_TYPES),
            rng.choice(words.STREETS),
            number,
            complement,
            rng.choice(words.NEIGHBOURHOODS),
            cep,
            uf,
            municipio,
        )
        pais = BRAZIL if rng.random() < 0.03 else ""
        return quoted("", pais), address, self._contact(rng, uf)

    def _contact(self, rng: random.Random, uf: str) -> str:
        def phone() -> tuple[str, str]:
            ddd = str(rng.choice(words.AREA_CODES[uf]))
            if rng.random() < 0.4:
                return ddd, f"9{rng.randrange(10**8):08d}"
            return ddd, f"{rng.randrange(2, 6)}{rng.randrange(10**7):07d}"

        first = phone() if rng.random() < 0.8 else ("", "")
        second = phone() if rng.random() < 0.1 else ("", "")
        fax = phone() if rng.random() < 0.05 else ("", "")
        email = ""
        if rng.random() < 0.4:
            user = _ascii(rng.choice(words.FIRST_NAMES)).lower()
            email = f"{user}{rng.randrange(1000)}@{rng.choice(words.EMAIL_DOMAINS)}"
        return quoted(*first, *second, *fax, email)

    def activity(self, rng: random.Random) -> str:
        common = self.lookups.common_cnaes
        principal = rng.choice(common) if rng.random() < 0.5 else rng.choice(self.cnaes)
        secondary = ""
        if rng.random() < 0.4:
            secondary = ",".join(rng.sample(self.cnaes, rng.randrange(1, 9)))
        return quoted(principal, secondary)

    def special_status(self, rng: random.Random) -> str:
        if rng.random() < 0.01:
            return quoted(rng.choice(words.SPECIAL_STATUSES), self.dates.text(rng))
        return quoted("", "")

    def partner_profile(self, rng: random.Random) -> tuple[str, str]:
        """A partner's columns after its document: who it is decides most of them."""
        entry = self.dates.text(rng) if rng.random() > 0.01 else "0"
        kind = rng.random()
        if kind < 0.85:  # a person living in Brazil
            qualificacao = _weighted(
                rng, ((45, "49"), (35, "22"), (5, "05"), (5, "65"), (3, "28"), (3, "16"), (2, "30"))
            )
            if qualificacao == "30":  # an under-age partner is represented by a parent
                parent = rng.choice(("14", "15"))  # mother or father
                representative = (masked_cpf(rng), self._person(rng), parent)
                age = "1"
            else:
                representative = MISSING_REPRESENTATIVE
                age = str(
                    _weighted(
                        rng, ((5, 2), (20, 3), (25, 4), (22, 5), (15, 6), (8, 7), (4, 8), (1, 9))
                    )
                )
            return "2", quoted(qualificacao, entry, "", *representative, age)
        if kind < 0.97:  # a company
            return "1", quoted(
                rng.choice(("22", "49", "48")), entry, "", *MISSING_REPRESENTATIVE, "0"
            )
        if rng.random() < 0.3:
            pais = rng.choice(ORPHAN_CODES["paises"])
        else:
            pais = rng.choice(self.countries)
        representative = (masked_cpf(rng), self._person(rng), "17")  # an attorney in Brazil
        return "3", quoted(rng.choice(("37", "38")), entry, pais, *representative, "0")

    def _person(self, rng: random.Random) -> str:
        return f"{rng.choice(words.FIRST_NAMES)} {rng.choice(words.SURNAMES)}"

    def simples_option(self, rng: random.Random) -> str:
        dates = self.dates
        simples_in = dates.between(rng, _SIMPLES_START)
        simples_out = dates.between(rng, simples_in)
        mei_in = dates.between(rng, _MEI_START)
        mei_out = dates.between(rng, mei_in)
        text, null = _yyyymmdd, NULL_DATE
        return _weighted(
            rng,
            (
                (40, quoted("S", text(simples_in), null, "N", null, null)),
                (25, quoted("N", text(simples_in), text(simples_out), "N", null, null)),
                (25, quoted("S", text(mei_in), null, "S", text(mei_in), null)),
                (7, quoted("N", text(mei_in), text(mei_out), "N", text(mei_in), text(mei_out))),
                (2.5, quoted("N", null, null, "N", null, null)),
                (0.5, quoted("", null, null, "", null, null)),
            ),
        )


def build_pools(seed: int, lookups: Lookups, extraction: dt.date) -> Pools:
    """The pools of one release: a function of the seed alone, so output is reproducible."""
    return _PoolBuilder(random.Random(f"{seed}/pools"), lookups, extraction).build()
