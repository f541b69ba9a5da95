//! Command-line interface: `ferry serve`, `ferry user ...`.
