"""CNPJ check digits by the alphanumeric rule of IN RFB 2.229/2024.

The rule is the classic modulo-11 one with each character worth `ord(c) - 48`, so a
numeric CNPJ gets the same digits as before 2026. Lineage validates user input with
it, the quality checks mirror it in SQL, and the synthetic generator makes valid ones.
"""

from __future__ import annotations

import re

FIRST_WEIGHTS = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
SECOND_WEIGHTS = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
_BODY = re.compile(r"[0-9A-Z]{12}")


def digit(total: int) -> int:
    remainder = total % 11
    return 0 if remainder < 2 else 11 - remainder


def weighted(text: str, weights: tuple[int, ...]) -> int:
    return sum(weight * (ord(char) - 48) for weight, char in zip(weights, text, strict=True))


def check_digits(body: str) -> str:
    """The two check digits of the 12 first characters (cnpj_basico + cnpj_ordem)."""
    if not _BODY.fullmatch(body):
        raise ValueError(f"a CNPJ body is 12 characters of [0-9A-Z]: {body!r}")
    first = digit(weighted(body, FIRST_WEIGHTS))
    second = digit(weighted(body + str(first), SECOND_WEIGHTS))
    return f"{first}{second}"


def is_valid(cnpj: str) -> bool:
    """Whether a 14-character CNPJ carries the right check digits."""
    return (
        len(cnpj) == 14
        and bool(_BODY.fullmatch(cnpj[:12]))
        and check_digits(cnpj[:12]) == cnpj[12:]
    )
