//! End-to-end tests of the `candor` binary and HTTP API.
