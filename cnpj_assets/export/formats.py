"""The file formats of an export: a module of its own so the CLI names them without
importing pyarrow or Dagster."""

PARQUET, CSV = "parquet", "csv"
FORMATS = (PARQUET, CSV)
