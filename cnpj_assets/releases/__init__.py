"""A release's life after its load: publication, retention, and what the user can ask of it."""
