"""Who the synthetic companies are, computed from their index alone.

Every fact table is written in its own pass, in constant memory, yet all of them must
agree on each company's cnpj_basico, its number of branches and partners, and whether
it opted for the Simples. So nothing is stored: the cnpj_basico comes from a seeded
bijective scramble of the company index (unique without a set), and the traits from a
64-bit hash of it.
"""

from __future__ import annotations

import random
from typing import NamedTuple

from cnpj_assets.synthetic.cnpj import CheckDigitTable, prefix_sums

MAX_COMPANIES = 10**8  # the scramble is a permutation of the 8-digit numbers
FILES = 10
FIRST_FILE_SHARE = 0.41  # Empresas0 holds ~28 M of ~68.6 M rows in real releases
_BLOCK = 10_000
_MASK64 = (1 << 64) - 1
_ALPHABET36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ALNUM_SPACE = 36**7


def _bucket_table(counts: dict[int, int]) -> tuple[int, ...]:
    """A 1024-entry table whose value frequencies are `counts`: one masked hash slice picks."""
    table = tuple(value for value, count in counts.items() for _ in range(count))
    if len(table) != 1024:
        raise ValueError(f"bucket counts add up to {len(table)}, not 1024")
    return table


ALNUM_THRESHOLD = 31  # of 1024: ~3 % of companies have an alphanumeric cnpj_basico
_BRANCHES = _bucket_table({0: 989, 1: 25, 2: 7, 3: 2, 6: 1})  # ~1.05 establishments each
_PARTNERS = _bucket_table({0: 780, 1: 130, 2: 80, 3: 24, 4: 7, 6: 3})  # ~0.4 partners each
_SIMPLES = _bucket_table({1: 594, 0: 430})  # ~58 % of companies are in the Simples file


def is_alphanumeric(traits: int) -> bool:
    """Whether a company's cnpj_basico is one of the alphanumeric ones issued since July 2026."""
    return (traits & 1023) < ALNUM_THRESHOLD


def branch_count(traits: int) -> int:
    """Establishments of a company besides its head office."""
    return _BRANCHES[(traits >> 10) & 1023]


def partner_count(traits: int) -> int:
    return _PARTNERS[(traits >> 20) & 1023]


def in_simples(traits: int) -> bool:
    return _SIMPLES[(traits >> 30) & 1023] == 1


class CompanyKey(NamedTuple):
    """A company's cnpj_basico with what its CNPJs' check digits need (a tuple: made per row)."""

    basico: str
    first_sum: int  # weighted sums of the 8 basico characters, see CheckDigitTable
    second_sum: int
    traits: int  # 64-bit hash the trait functions slice


class Companies:
    """The company universe of a release: index -> key, and which file holds which index.

    Indexes 0..rows-1 are the empresas rows; `orphan_count` more indexes follow, which
    have establishments but no empresas row, as real releases have.
    """

    def __init__(self, seed: int, rows: int, orphan_count: int) -> None:
        if rows + orphan_count > MAX_COMPANIES:
            raise ValueError(f"at most {MAX_COMPANIES} companies fit 8-character CNPJs")
        self.rows = rows
        self.orphan_count = orphan_count
        rng = random.Random(f"{seed}/companies")
        self._rounds = tuple(tuple(rng.randrange(_BLOCK) for _ in range(_BLOCK)) for _ in range(4))
        self._salt = rng.getrandbits(64)
        self._alnum_factor = rng.randrange(1, _ALNUM_SPACE // 6) * 6 + 1  # coprime to 36
        self._alnum_offset = rng.randrange(_ALNUM_SPACE)
        self.check_digits = CheckDigitTable()
        self._sums = self.check_digits.block_sums

    def traits(self, index: int) -> int:
        """splitmix64 of the salted index: cheap, well spread, no state."""
        value = (index * 0x9E3779B97F4A7C15 + self._salt) & _MASK64
        value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
        return value ^ (value >> 31)

    def _alnum_basico(self, scrambled: int) -> str:
        """An alphanumeric basico, injective in `scrambled` and never all digits.

        The third character is a forced letter (`scrambled % 26`); the other seven spell
        an affine permutation of `scrambled // 26` in base 36, so no two collide and none
        can equal a numeric basico.
        """
        value = (scrambled // 26 * self._alnum_factor + self._alnum_offset) % _ALNUM_SPACE
        chars = []
        for _ in range(7):
            value, digit = divmod(value, 36)
            chars.append(_ALPHABET36[digit])
        return f"{chars[0]}{chars[1]}{chr(65 + scrambled % 26)}{''.join(chars[2:])}"

    def key(self, index: int) -> CompanyKey:
        """The company at `index`: a 4-round Feistel network over two 4-digit halves."""
        first, second, third, fourth = self._rounds
        high, low = divmod(index, _BLOCK)
        high, low = low, (high + first[low]) % _BLOCK
        high, low = low, (high + second[low]) % _BLOCK
        high, low = low, (high + third[low]) % _BLOCK
        high, low = low, (high + fourth[low]) % _BLOCK
        traits = self.traits(index)
        if is_alphanumeric(traits):
            basico = self._alnum_basico(high * _BLOCK + low)
            first_sum, second_sum = prefix_sums(basico)
        else:
            basico = f"{high:04d}{low:04d}"
            (first_high, second_high), (first_low, second_low) = self._sums[0], self._sums[1]
            first_sum = first_high[high] + first_low[low]
            second_sum = second_high[high] + second_low[low]
        return CompanyKey(basico, first_sum, second_sum, traits)

    def dv(self, key: CompanyKey, ordem: int) -> str:
        """Check digits of establishment `ordem` (1 = head office) of a company."""
        first_ordem, second_ordem = self._sums[2]
        return self.check_digits.digits(
            key.first_sum + first_ordem[ordem], key.second_sum + second_ordem[ordem]
        )

    def head_office_cnpj(self, index: int) -> str:
        """The full 14-character CNPJ of a company's head office (a partner that is a company)."""
        key = self.key(index)
        return f"{key.basico}0001{self.dv(key, 1)}"

    def file_ranges(self) -> tuple[range, ...]:
        """Company indexes per fact file: file 0 is the big one, as in real releases."""
        first = round(self.rows * FIRST_FILE_SHARE) if self.rows >= FILES else self.rows
        rest = self.rows - first
        bounds = [0, first] + [first + rest * k // (FILES - 1) for k in range(1, FILES)]
        return tuple(range(bounds[n], bounds[n + 1]) for n in range(FILES))

    def orphans_of_file(self, file_number: int) -> range:
        """Indexes of orphan companies whose establishments go to this file."""
        return range(self.rows + file_number, self.rows + self.orphan_count, FILES)
