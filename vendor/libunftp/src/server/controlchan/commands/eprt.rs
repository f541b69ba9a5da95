//! FERRY PATCH (eprt): the RFC 2428 Extended Port (`EPRT`) command
//
// EPRT<space><d><net-prt><d><net-addr><d><tcp-port><d>
//
// The EPRT command allows for the specification of an extended address for the data
// connection: the network protocol (1 for IPv4, 2 for IPv6), the address in that protocol's
// string form, and the TCP port, separated by a delimiter (usually `|`) chosen by the client.
// The server answers 522 with the protocols it supports when it does not support the one
// requested.

use super::Port;
use crate::{
    auth::UserDetail,
    server::controlchan::{
        Reply, ReplyCode,
        error::ControlChanError,
        handler::{CommandContext, CommandHandler},
    },
    storage::{Metadata, StorageBackend},
};
use async_trait::async_trait;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[derive(Debug)]
pub struct Eprt {
    addr: String,
}

impl Eprt {
    pub fn new(addr: String) -> Self {
        Eprt { addr }
    }
}

/// Why an EPRT argument names no address we can connect to.
#[derive(Debug, PartialEq, Eq)]
enum EprtError {
    /// Not `<d>proto<d>address<d>port<d>` (501).
    Syntax,
    /// A network protocol other than 1 (IPv4) or 2 (IPv6) (522).
    UnsupportedProtocol,
}

/// Parses `<d><net-prt><d><net-addr><d><tcp-port><d>` (RFC 2428 section 2).
fn parse_eprt(arg: &str) -> Result<SocketAddr, EprtError> {
    let delimiter = arg.chars().next().filter(|d| ('!'..='~').contains(d)).ok_or(EprtError::Syntax)?;
    let fields: Vec<&str> = arg.split(delimiter).collect();
    let [before, protocol, address, port, after] = fields[..] else {
        return Err(EprtError::Syntax);
    };
    if !before.is_empty() || !after.is_empty() {
        return Err(EprtError::Syntax);
    }
    let ip = match protocol {
        "1" => address.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| EprtError::Syntax)?,
        "2" => address.parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| EprtError::Syntax)?,
        other if other.parse::<u8>().is_ok() => return Err(EprtError::UnsupportedProtocol),
        _ => return Err(EprtError::Syntax),
    };
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(SocketAddr::new(ip, port)),
        _ => Err(EprtError::Syntax),
    }
}

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Eprt
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    #[tracing_attributes::instrument]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        let CommandContext {
            logger,
            tx_control_chan: tx,
            session,
            ..
        } = args;
        match parse_eprt(&self.addr) {
            // The same checks as PORT (port-bounce) happen before any connection is attempted.
            Ok(addr) => Ok(Port::connect_active(addr, "EPRT", session, tx, logger).await),
            Err(EprtError::UnsupportedProtocol) => Ok(Reply::new(ReplyCode::NetworkProtocolNotSupported, "Network protocol not supported, use (1,2)")),
            Err(EprtError::Syntax) => Ok(Reply::new(ReplyCode::ParameterSyntaxError, "Invalid EPRT argument")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv4_and_ipv6_with_any_delimiter() {
        assert_eq!(parse_eprt("|1|132.235.1.2|6275|"), Ok("132.235.1.2:6275".parse().unwrap()));
        assert_eq!(parse_eprt("|2|1080::8:800:200C:417A|5282|"), Ok("[1080::8:800:200C:417A]:5282".parse().unwrap()));
        assert_eq!(parse_eprt("!1!10.0.0.1!2000!"), Ok("10.0.0.1:2000".parse().unwrap()));
    }

    #[test]
    fn refuses_malformed_arguments_and_other_protocols() {
        for bad in ["", "|1|10.0.0.1|2000", "|1|10.0.0.1|0|", "|1|::1|2000|", "|2|10.0.0.1|2000|", "|x|10.0.0.1|2000|", " 1 10.0.0.1 2000 "] {
            assert_eq!(parse_eprt(bad), Err(EprtError::Syntax), "{bad:?}");
        }
        assert_eq!(parse_eprt("|3|10.0.0.1|2000|"), Err(EprtError::UnsupportedProtocol));
    }
}
