"""Record builders of the four fact tables: one company index in, its records out.

Each builder draws from the release's value pools with its own file-seeded generator, and
from `Companies` for everything that must agree across tables (keys, counts). A record is
a fully quoted CSV line without its line ending, made by a single f-string.
"""

from __future__ import annotations

import abc
import functools
import random

from cnpj_assets.synthetic.companies import (
    Companies,
    branch_count,
    in_simples,
    is_alphanumeric,
    partner_count,
)
from cnpj_assets.synthetic.values import POOL_BITS, Pools


class _Builder(abc.ABC):
    """What the file writer asks of a fact table, and the name makers tables share."""

    def __init__(self, companies: Companies, pools: Pools, rng: random.Random) -> None:
        self.companies = companies
        self.pools = pools
        self.rng = rng
        self._pick = functools.partial(rng.getrandbits, POOL_BITS)  # a pool index, C-fast

    @abc.abstractmethod
    def records(self, index: int, force: bool = False) -> list[str]:
        """Records of the company at `index`; `force` asks for at least one record."""

    def _company_name(self) -> str:
        pools, pick = self.pools, self._pick
        return f"{pools.trades[pick()]} {pools.business_names[pick()]} LTDA"

    def _person_name(self) -> str:
        pools, pick = self.pools, self._pick
        return f"{pools.first_names[pick()]} {pools.surnames[pick()]} {pools.surnames[pick()]}"


class EmpresasRows(_Builder):
    """One row per company: a sole trader's razao social ends with its CPF, as in real data."""

    def records(self, index: int, force: bool = False) -> list[str]:
        pools, pick = self.pools, self._pick
        profile = pools.company_profiles[pick()]
        if profile.head is None:
            name = f"{self._person_name()} {pools.person_ids[pick()]}"
        else:
            name = f"{profile.head} {pools.business_names[pick()]}{profile.suffix}"
        return [f'"{self.companies.key(index).basico}";"{name}";{profile.tail}']


class EstabelecimentosRows(_Builder):
    """The head office (cnpj_ordem 0001, identificador 1) and the branches of a company."""

    def records(self, index: int, force: bool = False) -> list[str]:
        pools, pick, companies = self.pools, self._pick, self.companies
        key = companies.key(index)
        starts = pools.recent_start_dates if is_alphanumeric(key.traits) else pools.start_dates
        records = []
        for ordem in range(1, branch_count(key.traits) + 2):
            place = pools.places[pick()]
            matriz_filial = 1 if ordem == 1 else 2
            records.append(
                f'"{key.basico}";"{ordem:04d}";"{companies.dv(key, ordem)}";"{matriz_filial}";'
                f"{pools.trade_names[pick()]};{pools.statuses[pick()]};{place[0]};{starts[pick()]};"
                f"{pools.activities[pick()]};{place[1]};{place[2]};{pools.special_statuses[pick()]}"
            )
        return records


class SociosRows(_Builder):
    """Partners: people with masked CPFs, companies with full CNPJs, foreigners.

    A person may repeat the masked CPF of the partner before, as happens in real data
    (only 6 of the 11 digits are shown), so (cnpj_basico, cpf_cnpj_socio) is not a key.
    """

    def records(self, index: int, force: bool = False) -> list[str]:
        companies, pools, pick = self.companies, self.pools, self._pick
        count = partner_count(companies.traits(index)) or int(force)
        if not count:
            return []
        basico = companies.key(index).basico
        records = []
        previous_cpf = ""
        for _ in range(count):
            identificador, tail = pools.partner_profiles[pick()]
            if identificador == "2":
                name = self._person_name()
                shares_cpf = previous_cpf and self.rng.random() < 0.05
                document = previous_cpf if shares_cpf else pools.masked_cpfs[pick()]
                previous_cpf = document
            elif identificador == "1":
                name = self._company_name()
                document = companies.head_office_cnpj(int(self.rng.random() * companies.rows))
            else:
                name, document = pools.foreign_names[pick()], ""
            records.append(f'"{basico}";"{identificador}";"{name}";"{document}";{tail}')
        return records


class SimplesRows(_Builder):
    """The Simples Nacional / MEI options of the companies that have a row."""

    def records(self, index: int, force: bool = False) -> list[str]:
        companies = self.companies
        if not (force or in_simples(companies.traits(index))):
            return []
        return [f'"{companies.key(index).basico}";{self.pools.simples_options[self._pick()]}']


BUILDERS: dict[str, type[_Builder]] = {
    "empresas": EmpresasRows,
    "estabelecimentos": EstabelecimentosRows,
    "socios": SociosRows,
    "simples": SimplesRows,
}
