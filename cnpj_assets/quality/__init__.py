"""Data quality counted as the rows go by: what the asset checks read instead of a scan."""
