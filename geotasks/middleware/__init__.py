"""Dramatiq middleware: rate limits, job status, periodic de-duplication, results."""
