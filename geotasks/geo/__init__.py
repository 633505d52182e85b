"""Pure geoprocessing: fiona and shapely, no Dramatiq, no Postgres."""
