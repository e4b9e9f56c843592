"""A release's size as a share of a real one: `--scale 1.0` has the real row counts.

Users plan for a real release, so synthetic sizes are named by how far they are from
it, and the benchmarks project their measurements back to it with these same counts.
"""

from __future__ import annotations

from cnpj_assets.synthetic.lookups import LOOKUP_SIZES

REAL_ROWS = {  # cnpj-layout.md, a recent release
    "empresas": 68_600_000,
    "estabelecimentos": 72_000_000,
    "socios": 27_600_000,
    "simples": 40_000_000,
}
REAL_RELEASE_ROWS = sum(REAL_ROWS.values()) + sum(LOOKUP_SIZES.values())


def companies_at_scale(scale: float) -> int:
    """The `rows` (companies) of a release `scale` times a real one.

    The generator makes ~1.05 establishments, ~0.4 partners and ~0.58 Simples rows per
    company, the real proportions, so scaling the companies scales every fact table.
    """
    if scale <= 0:
        raise ValueError(f"a scale is a positive share of a real release, not {scale}")
    return max(1, round(REAL_ROWS["empresas"] * scale))
