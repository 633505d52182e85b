"""Everything that speaks to Postgres through psycopg2: pool, schema, broker, results, limits."""
