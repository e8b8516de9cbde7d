"""Benchmarks: real-time factor per backend and component (rtf.py), FLOP counts and the compute floor."""
