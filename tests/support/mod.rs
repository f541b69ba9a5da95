//! Helpers for the hardening tests: the real binary as a child process, and raw transfers.
#![allow(dead_code)]

pub mod haproxy;
pub mod process;
pub mod sockets;
pub mod transfers;
