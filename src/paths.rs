//! Client path resolution: the one place a client-supplied path becomes a filesystem path.
