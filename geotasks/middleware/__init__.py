"""Dramatiq middleware of geotasks; :func:`geotasks.broker.build_middleware` puts them in order."""
