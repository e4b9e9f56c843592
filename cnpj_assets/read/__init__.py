"""What every reader shares: labels, the establishment as a reader sees it, search.

psql (views, SQL functions), the CLI, the HTTP API and the exports are thin doors onto
this package, so a label or a field added here appears in all of them at once.
"""
