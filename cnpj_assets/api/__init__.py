"""The HTTP API (`cnpj-assets serve`): routes, errors and metrics over read/, no SQL of its own."""
