//! Crash signatures: `.ips` reports, stderr lines, exit signals, core dumps.
