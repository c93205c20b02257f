"""Fits of scaling laws and emergence: pure functions of arrays returning frozen results."""
