"""Table-driven CNPJ check digits for the generator's hot loop (the rule: cnpj_number).

The generator computes millions of check digits, so it turns a CNPJ into three
precomputed partial sums and one lookup instead of calling `check_digits`.
"""

from __future__ import annotations

from cnpj_assets.cnpj_number import FIRST_WEIGHTS, SECOND_WEIGHTS, digit, weighted


def prefix_sums(basico: str) -> tuple[int, int]:
    """The two weighted sums over the 8 characters of a cnpj_basico, for `CheckDigitTable`."""
    return weighted(basico, FIRST_WEIGHTS[:8]), weighted(basico, SECOND_WEIGHTS[:8])


class CheckDigitTable:
    """Check digits from partial sums: the generator's hot loop does additions and one lookup.

    A CNPJ body is three 4-character blocks; for numeric blocks both weighted sums are
    precomputed per block position (`block_sums[position][value]`). The pair of digits
    only depends on both totals modulo 11, so `digits` reads them from a 121-entry table.
    """

    def __init__(self) -> None:
        self.block_sums: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = tuple(
            self._position_sums(position) for position in range(3)
        )
        self._pairs = tuple(
            self._pair(first_total, second_total)
            for first_total in range(11)
            for second_total in range(11)
        )

    @staticmethod
    def _position_sums(position: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        first = FIRST_WEIGHTS[4 * position : 4 * position + 4]
        second = SECOND_WEIGHTS[4 * position : 4 * position + 4]
        blocks = [f"{value:04d}" for value in range(10_000)]
        return (
            tuple(weighted(block, first) for block in blocks),
            tuple(weighted(block, second) for block in blocks),
        )

    @staticmethod
    def _pair(first_total: int, second_total: int) -> str:
        first = digit(first_total)
        return f"{first}{digit(second_total + 2 * first)}"

    def digits(self, first_total: int, second_total: int) -> str:
        """Check digits given both weighted sums over the 12 body characters."""
        return self._pairs[(first_total % 11) * 11 + second_total % 11]
