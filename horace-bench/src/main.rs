//! horace-bench: measures Horace against its baselines (see docs/benchmarks.md).

fn main() {}
