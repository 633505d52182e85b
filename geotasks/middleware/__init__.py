"""Dramatiq middleware: job status, results, rate limiting, periodic de-duplication."""
