"""Everything Dagster sees beyond the table loads: the release's publication, for now."""
