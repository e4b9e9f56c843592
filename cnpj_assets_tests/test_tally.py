"""The counts the reader takes for the checks, against plain Python on the same values."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa

from cnpj_assets.cnpj_number import check_digits, is_valid
from cnpj_assets.quality.cnpj_digits import valid_cnpjs
from cnpj_assets.quality.rules import CNPJ_CHECK_DIGITS, REFERENTIAL_INTEGRITY
from cnpj_assets.quality.tally import FailedValues, TallyPlan
from cnpj_assets.specs import TABLES

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MALFORMED = [
    "12ABC34501DEX5",
    "1234",
    None,
    "12abc34501de35",
    "ÁBCDEFGHIJKL12",
    "",
    "1234567890123é",
    "[[[[[[[[[[[[00",
    "/0000000000000",
    "12345678000195 ",
]


def test_check_digits_in_numpy_agree_with_python() -> None:
    rng = random.Random(3)
    bodies = ["".join(rng.choice(ALPHABET) for _ in range(12)) for _ in range(3000)]
    valid = [body + check_digits(body) for body in bodies]
    wrong = [body + f"{(int(check_digits(body)) + 7) % 100:02d}" for body in bodies[:400]]
    values = valid + wrong + MALFORMED
    rng.shuffle(values)
    expected = [value is not None and is_valid(value) for value in values]
    column = pa.array(values)
    assert valid_cnpjs(column).tolist() == expected
    assert valid_cnpjs(column.slice(11, 700)).tolist() == expected[11:711]
    assert valid_cnpjs(pa.array(valid)).all()  # every value 14 long: the unfiltered path


def test_failed_values_keep_the_smallest_with_rows_and_first_row() -> None:
    kept = FailedValues(cap=3)
    kept.add(pa.array(["b", "a", "b", "d"]), np.array([10, 11, 12, 13]))
    kept.add(pa.array(["a", "c"]), np.array([20, 21]))
    assert kept.values == {"a": [2, 11], "b": [2, 10], "c": [1, 21]}
    assert kept.complete is False  # "d" was dropped for the cap


def test_a_batch_is_counted_the_same_with_and_without_orphans() -> None:
    spec = TABLES["socios"]
    plan = TallyPlan(
        spec, {"pais": pa.array(["", "105", "249"]), "qualificacao_socio": pa.array(["", "49"])}
    )
    body = "12ABC345" + "0001"
    good, bad = body + check_digits(body), body + "00"
    width = len(spec.columns)

    def row(kind: str, cnpj: str, pais: str | None, qualificacao: str) -> list[str | None]:
        values: list[str | None] = [None] * width
        names = spec.column_names
        values[names.index("identificador_socio")] = kind
        values[names.index("cpf_cnpj_socio")] = cnpj
        values[names.index("pais")] = pais
        values[names.index("qualificacao_socio")] = qualificacao
        return values

    rows = [
        row("1", good, "105", "49"),
        row("2", "***123456**", None, "49"),
        row("1", bad, "042", "49"),
        row("1", good, "", "22"),
        row("3", bad, "042", "49"),
    ]
    batch = pa.table({name: [r[i] for r in rows] for i, name in enumerate(spec.column_names)})
    tally = plan.new_file()
    tally.observe(batch, 100)
    tally.observe(batch.slice(0, 2), 105)  # a batch without orphans or bad CNPJs
    counts = {(c.check, c.column): c for c in tally.counts}
    pais = counts[(REFERENTIAL_INTEGRITY, "pais")]
    assert (pais.checked, pais.failed, pais.failed_values.values) == (5, 2, {"042": [2, 102]})
    qualificacao = counts[(REFERENTIAL_INTEGRITY, "qualificacao_socio")]
    assert (qualificacao.failed, qualificacao.failed_values.values) == (1, {"22": [1, 103]})
    digits = counts[(CNPJ_CHECK_DIGITS, "cpf_cnpj_socio")]
    assert (digits.checked, digits.failed, digits.failed_values.values) == (4, 1, {bad: [1, 102]})
