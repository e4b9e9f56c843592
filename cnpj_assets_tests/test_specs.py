"""The specs against the official layout: column counts, file names, references."""

from cnpj_assets.specs import TABLES, table_for_member, table_for_zip


def test_column_counts_match_the_layout() -> None:
    counts = {name: len(spec.columns) for name, spec in TABLES.items()}
    assert counts == {
        "empresas": 7,
        "estabelecimentos": 30,
        "socios": 11,
        "simples": 7,
        "cnaes": 2,
        "motivos": 2,
        "municipios": 2,
        "naturezas": 2,
        "paises": 2,
        "qualificacoes": 2,
    }


def test_a_release_has_37_zips() -> None:
    names = [name for spec in TABLES.values() for name in spec.zip_names()]
    assert len(names) == len(set(names)) == 37
    assert "Estabelecimentos9.zip" in names and "Simples.zip" in names


def test_tables_are_found_by_zip_then_by_member() -> None:
    assert table_for_zip("Empresas3.zip").name == "empresas"
    assert table_for_zip("Empresas10.zip") is None
    assert table_for_member("K3241.K03200Y1.D61012.ESTABELE").name == "estabelecimentos"
    assert table_for_member("F.K03200$W.SIMPLES.CSV.D61012").name == "simples"
    assert table_for_member("F.K03200$Z.D61012.QUALSCSV").name == "qualificacoes"


def test_member_names_follow_the_real_pattern() -> None:
    assert TABLES["socios"].member_name(4, "61012") == "K3241.K03200Y4.D61012.SOCIOCSV"
    assert TABLES["cnaes"].member_name(0, "61012") == "F.K03200$Z.D61012.CNAECSV"


def test_facts_reference_existing_lookups() -> None:
    for spec in TABLES.values():
        for referenced in spec.referenced_tables:
            assert referenced in TABLES
    assert TABLES["estabelecimentos"].referenced_tables == (
        "empresas",
        "motivos",
        "paises",
        "cnaes",
        "municipios",
    )
    assert TABLES["socios"].key is None
