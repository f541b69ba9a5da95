//! The data path: large-buffer copy loops between data sockets and files.
