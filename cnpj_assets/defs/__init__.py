"""Everything Dagster sees: the table assets and their checks, cnpj_completo, changes,
the publication, sensors, resources, the executors and the log retention job.

`cnpj_assets.definitions` collects them; the work they call lives beside this package
(load/, releases/, reader/, postgres/, audit/, source/).
"""
