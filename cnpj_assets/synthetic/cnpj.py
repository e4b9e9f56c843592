"""CNPJ check digits by the alphanumeric rule of IN RFB 2.229/2024.

The rule is the classic modulo-11 one with each character worth `ord(c) - 48`, so a
numeric CNPJ gets the same digits as before 2026. The generator computes millions of
them, so besides the plain `check_digits` there is a table-driven form that turns a
CNPJ into three precomputed partial sums and one lookup.
"""

from __future__ import annotations

import re

FIRST_WEIGHTS = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
SECOND_WEIGHTS = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
_BODY = re.compile(r"[0-9A-Z]{12}")


def _digit(total: int) -> int:
    remainder = total % 11
    return 0 if remainder < 2 else 11 - remainder


def _weighted(text: str, weights: tuple[int, ...]) -> int:
    return sum(weight * (ord(char) - 48) for weight, char in zip(weights, text, strict=True))


def check_digits(body: str) -> str:
    """The two check digits of the 12 first characters (cnpj_basico + cnpj_ordem)."""
    if not _BODY.fullmatch(body):
        raise ValueError(f"a CNPJ body is 12 characters of [0-9A-Z]: {body!r}")
    first = _digit(_weighted(body, FIRST_WEIGHTS))
    second = _digit(_weighted(body + str(first), SECOND_WEIGHTS))
    return f"{first}{second}"


def is_valid(cnpj: str) -> bool:
    """Whether a 14-character CNPJ carries the right check digits."""
    return (
        len(cnpj) == 14
        and bool(_BODY.fullmatch(cnpj[:12]))
        and check_digits(cnpj[:12]) == cnpj[12:]
    )


def prefix_sums(basico: str) -> tuple[int, int]:
    """The two weighted sums over the 8 characters of a cnpj_basico, for `CheckDigitTable`."""
    return _weighted(basico, FIRST_WEIGHTS[:8]), _weighted(basico, SECOND_WEIGHTS[:8])


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
            tuple(_weighted(block, first) for block in blocks),
            tuple(_weighted(block, second) for block in blocks),
        )

    @staticmethod
    def _pair(first_total: int, second_total: int) -> str:
        first = _digit(first_total)
        return f"{first}{_digit(second_total + 2 * first)}"

    def digits(self, first_total: int, second_total: int) -> str:
        """Check digits given both weighted sums over the 12 body characters."""
        return self._pairs[(first_total % 11) * 11 + second_total % 11]
