"""Matplotlib figures (Agg backend) from result rows and fits; no fitting happens here."""
