"""A run's life in the Dagster instance: who runs it, stopping it, healing after its death."""
