//! Server wiring: the accept loop, session limits, per-connection libunftp servers, shutdown.
