//! Connection settings: URLs and TLS roots into clients, the timeouts of a
//! connection, and connection errors that say what failed.

use std::time::Duration;

use redis::{AsyncConnectionConfig, Client, ConnectionAddr};

use crate::error::{Error, ErrorKind};
use crate::replicas::ReplicaAcks;

/// Connection settings taken from the builder.
pub(crate) struct Settings {
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// PEM roots to trust for `rediss://` instead of the system's.
    #[cfg(feature = "tls")]
    pub root_ca: Option<Vec<u8>>,
    pub acks: ReplicaAcks,
    pub ack_timeout: Duration,
    /// Most bytes read of an entry: a larger one is never pulled whole.
    pub max_entry_bytes: usize,
    /// How scripts run.
    pub scripting: super::scripts::Scripting,
    /// The near-cache's budget in bytes (`None`: off).
    pub near_cache: Option<u64>,
    /// Whether values are kept decoded beside entries (counted in the
    /// near-cache's budget).
    pub keep_decoded: bool,
    /// This process's lease, and what it knows of the namespace's.
    pub lease: std::sync::Arc<super::near::lease::Lease>,
    /// The cache's event listener (the near-cache's flushes).
    pub events: crate::events::Listener,
}

impl Settings {
    /// The timeouts of one connection. The response timeout is long enough
    /// for a bust's `WAIT`; every operation is also bounded by the command
    /// timeout (see `Backend::bounded`).
    pub(crate) fn connection(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout + self.ack_timeout))
    }
}

/// A client for `url`, trusting the configured roots for `rediss://`.
///
/// A fragment is refused: the `redis` crate reads `#insecure` on a
/// `rediss://` URL as "do not check the certificate", and another crate of
/// the application may enable the feature that honours it.
pub(crate) fn client(url: &str, settings: &Settings) -> Result<Client, Error> {
    if url.contains('#') {
        return Err(Error::new(
            ErrorKind::Config,
            "Redis URLs must not have a fragment (`#...`): `#insecure` would turn off \
             certificate checks",
        ));
    }
    #[cfg(feature = "tls")]
    if let Some(root) = &settings.root_ca {
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root.clone()),
        };
        return Client::build_with_tls(url, certs).map_err(|e| {
            Error::new(ErrorKind::Config, "invalid Redis URL or certificate").with_source(e)
        });
    }
    #[cfg(not(feature = "tls"))]
    let _ = settings;
    Client::open(url).map_err(|e| {
        let hint = if url.starts_with("rediss://") && !cfg!(feature = "tls") {
            "rediss:// needs the `tls` feature of cachette"
        } else {
            "invalid Redis URL"
        };
        Error::new(ErrorKind::Config, hint).with_source(e)
    })
}

/// A client for another node of the cluster `seed` belongs to: the same
/// credentials, database and TLS settings, another address.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) fn node_client(seed: &Client, host: &str, port: u16) -> Result<Client, Error> {
    let info = seed.get_connection_info().clone();
    let addr = match info.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host.to_string(), port),
    };
    Client::open(info.set_addr(addr))
        .map_err(|e| Error::new(ErrorKind::Config, "invalid cluster node address").with_source(e))
}

/// Which server `client` reaches: `host:port` (the host in lower case),
/// or a socket's path. Never a user or a password.
pub(crate) fn address(client: &Client) -> String {
    match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{}:{port}", host.to_ascii_lowercase())
        }
        ConnectionAddr::Unix(path) => path.display().to_string(),
        _ => String::new(),
    }
}

/// Which server and database `client` reaches, whatever the spelling of
/// its URL: the address, the database and the user.
pub(crate) fn identity(client: &Client) -> String {
    let redis = client.get_connection_info().redis_settings();
    format!(
        "{}/{}/{}",
        address(client),
        redis.db(),
        redis.username().unwrap_or("default")
    )
}

/// Where a connection goes, for messages (never with credentials), and
/// whether it speaks TLS (so that a failed handshake is reported as one).
#[derive(Clone, Debug)]
pub(crate) struct Target {
    name: String,
    tls: bool,
}

impl Target {
    pub(crate) fn new(name: impl Into<String>, tls: bool) -> Target {
        Target {
            name: name.into(),
            tls,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if self.tls {
            f.write_str(" (TLS)")?;
        }
        Ok(())
    }
}

/// Whether `client` connects over TLS.
pub(crate) fn speaks_tls(client: &Client) -> bool {
    matches!(
        client.get_connection_info().addr(),
        ConnectionAddr::TcpTls { .. }
    )
}

/// Where `client` connects.
pub(crate) fn target(client: &Client) -> Target {
    let name = match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("Redis at {host}:{port}")
        }
        ConnectionAddr::Unix(path) => format!("Redis at {}", path.display()),
        _ => "Redis".to_string(),
    };
    Target::new(name, speaks_tls(client))
}

/// Says what failed while connecting to `target`, keeping the kind (a
/// failed TLS handshake is a TLS error, with what went wrong in it).
pub(crate) fn connect_error(err: Error, target: &Target) -> Error {
    let trouble = err
        .redis()
        .and_then(|e| crate::error::tls_trouble(e, target.tls));
    if let Some(trouble) = trouble {
        return crate::error::tls_failed(target, trouble).with_source(err);
    }
    let what = match err.kind() {
        ErrorKind::Auth => format!("{target} refused the credentials"),
        ErrorKind::Timeout => format!("timed out connecting to {target}"),
        _ => format!("could not connect to {target}"),
    };
    Error::new(err.kind(), what).with_source(err)
}
