"""Benchmarks of the node (`make bench` = `python -m bench.run`); never run by `make test`."""
