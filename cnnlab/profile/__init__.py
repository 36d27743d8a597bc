"""Profiler: parameters, multiply-adds, memory access cost, activation memory, latency."""

from cnnlab.profile.counter import OpRow
from cnnlab.profile.profiler import Profile, build_on_meta, measure_latency, profile, skip_init

__all__ = ["OpRow", "Profile", "build_on_meta", "measure_latency", "profile", "skip_init"]
