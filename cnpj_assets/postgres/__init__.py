"""PostgreSQL: which server, the cnpj tables built from the specs, and the COPY writer."""
