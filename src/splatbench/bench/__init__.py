"""Performance benchmarks (`splatbench bench ...`): figures printed, never asserted in tests."""
