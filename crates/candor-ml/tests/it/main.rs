//! candor-ml's integration tests: one binary.

mod bank;
mod csv_input;
mod import;
mod props;
mod recs;
