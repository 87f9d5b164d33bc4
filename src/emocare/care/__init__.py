"""Caring: what to say or offer when a mood lasts. Content lives in ``content/`` as JSON."""
