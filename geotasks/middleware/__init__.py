"""Dramatiq middleware: rate limiting, job status, periodic de-duplication."""
