"""The tax-regime folder (`regime_tributario`): a second source on the Receita's share,
loaded by the same engine as the monthly tables with a spec of its own."""
