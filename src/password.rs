//! Password hashing and verification (argon2id), bounded and off the async runtime.
