"""Integrations with frameworks, each an optional extra (``pip install 'geotasks[django]'``)."""
