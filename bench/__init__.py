"""Benchmarks of the sales site (`make bench`); never part of `make test`. See bench/run.py."""
