"""Benchmarking: throughput, MFU, latency and memory of a Mixer (`run`), the timing and
memory probes it uses (`timing`) and the measured matmul peak MFU is taken against (`peak`)."""

from .run import BenchOptions, benchmark

__all__ = ["BenchOptions", "benchmark"]
