//! The storage backend: permissions, audit and upload atomicity over a local filesystem store.
