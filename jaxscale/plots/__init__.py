"""Matplotlib figures (Agg backend) from fit results: ``power_law`` and ``chinchilla``."""
