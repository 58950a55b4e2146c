//! The built-in checks' PromQL, built and recognised in one place.
