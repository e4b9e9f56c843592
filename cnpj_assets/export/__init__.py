"""Whole tables out of PostgreSQL: Parquet and CSV writers, the manifest, destinations."""
