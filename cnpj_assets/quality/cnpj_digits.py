"""CNPJ check digits of a whole Arrow column at once, in numpy.

The same modulo-11 rule as `cnpj_number` (each character worth its code minus 48, IN
RFB 2.229/2024), on the column's bytes seen as 14 rows of one byte per CNPJ: a few
vector operations per character position instead of a Python loop or a 28-term SQL
expression per row, so the reader can afford it on every establishment it loads. One
character position at a time, not a CNPJs x 14 matrix, whose strided columns are slow
to convert.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cnpj_assets.cnpj_number import FIRST_WEIGHTS, SECOND_WEIGHTS

LENGTH = 14


def _positions(cnpjs: pa.Array) -> np.ndarray:
    """The bytes of strings that are all LENGTH long, one contiguous row per position."""
    cnpjs = cnpjs.cast(pa.binary())
    offsets = np.frombuffer(cnpjs.buffers()[1], dtype=np.int32)[cnpjs.offset :]
    data = np.frombuffer(cnpjs.buffers()[2], dtype=np.uint8)
    start = int(offsets[0])
    matrix = data[start : start + LENGTH * len(cnpjs)].reshape(len(cnpjs), LENGTH)
    return np.ascontiguousarray(matrix.T)


def _is_digit(characters: np.ndarray) -> np.ndarray:
    return characters - np.uint8(48) < 10  # wraps below '0', so one comparison suffices


def _mod11_digit(total: np.ndarray) -> np.ndarray:
    remainder = total % 11
    return np.where(remainder < 2, 0, 11 - remainder).astype(np.int16)


def _valid(positions: np.ndarray) -> np.ndarray:
    """Validity of each CNPJ given as its LENGTH rows of bytes.

    Sums in int16: the largest, 12 x 9 x 42 ('Z' is worth 42), fits.
    """
    valid = _is_digit(positions[12]) & _is_digit(positions[13])
    first = np.zeros(positions.shape[1], dtype=np.int16)
    second = np.zeros(positions.shape[1], dtype=np.int16)
    for position in range(12):
        characters = positions[position]
        valid &= _is_digit(characters) | (characters - np.uint8(65) < 26)
        value = characters.astype(np.int16) - 48
        first += FIRST_WEIGHTS[position] * value
        second += SECOND_WEIGHTS[position] * value
    first_digit = _mod11_digit(first)
    second_digit = _mod11_digit(second + SECOND_WEIGHTS[12] * first_digit)
    return (
        valid
        & (positions[12].astype(np.int16) - 48 == first_digit)
        & (positions[13].astype(np.int16) - 48 == second_digit)
    )


def valid_cnpjs(cnpjs: pa.Array) -> np.ndarray:
    """True where a value is a 14-character CNPJ with the right check digits.

    NULLs, other lengths, characters outside [0-9A-Z] in the body or non-digits in the
    check digits are all invalid.
    """
    well_sized = pc.fill_null(pc.equal(pc.binary_length(cnpjs), LENGTH), False)
    mask = well_sized.to_numpy(zero_copy_only=False)
    valid = np.zeros(len(cnpjs), dtype=bool)
    if mask.any():
        sized = cnpjs if mask.all() else pc.filter(cnpjs, well_sized)
        valid[mask] = _valid(_positions(sized))
    return valid
