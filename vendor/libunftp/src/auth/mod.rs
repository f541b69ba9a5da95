//! Authentication helpers and built-in implementations.
//!
//! Core authentication traits and types live in `unftp-core`.
pub mod anonymous;
pub use anonymous::AnonymousAuthenticator;

pub(crate) use unftp_core::auth::UserDetail;

mod pipeline;
pub(crate) use pipeline::AuthenticationPipeline;

/// FERRY PATCH (auth-unavailable): an authenticator that cannot decide a login (its account
/// store is unreachable) returns this as the source of its `AuthenticationError`. The client
/// gets `421` with this text and the connection is closed (RFC 959: service not available),
/// instead of `530`, which would tell it the password was wrong; the failure is not counted
/// against the client's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUnavailable(pub String);

impl std::fmt::Display for ServiceUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServiceUnavailable {}

/// FERRY PATCH (auth-unavailable): the reply text of an authentication error whose source is a
/// [`ServiceUnavailable`], if it is one.
pub(crate) fn service_unavailable(error: &unftp_core::auth::AuthenticationError) -> Option<String> {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<ServiceUnavailable>())
        .map(|unavailable| unavailable.0.replace(['\r', '\n'], " "))
}
