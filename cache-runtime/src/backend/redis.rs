//! The Redis backend: one multiplexed connection that reconnects by itself.
//!
//! Costs, in round trips: a lookup is one `MGET` (the entry and its
//! versions); a fill is one `SET ... PX`; creating missing versions is one
//! pipeline of `SET ... NX GET PX`; a bust of any number of keys and tags is
//! one `EVALSHA` of `lua/bust.lua`. A stampede lock is `SET NX PX` with a
//! random token, released by `lua/unlock.lua` only by its owner.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script, Value};

use super::{millis, Blob, Bust, Lookup, Names};
use crate::error::{Error, ErrorKind};
use crate::version::Token;

pub(crate) struct RedisBackend {
    conn: ConnectionManager,
    /// An outer bound on every operation, reconnection attempts included.
    deadline: Duration,
    bust: Script,
    unlock: Script,
}

/// Connection settings taken from the builder.
pub(crate) struct Settings {
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// PEM roots to trust for `rediss://` instead of the system's.
    #[cfg(feature = "tls")]
    pub root_ca: Option<Vec<u8>>,
}

impl RedisBackend {
    fn config(settings: &Settings) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.command_timeout))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2))
    }

    fn client(url: &str, settings: &Settings) -> Result<Client, Error> {
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

    /// Connects now and fails if the server cannot be reached or refuses us.
    pub(crate) async fn connect(url: &str, settings: &Settings) -> Result<Self, Error> {
        let client = Self::client(url, settings)?;
        let conn = ConnectionManager::new_with_config(client, Self::config(settings))
            .await
            .map_err(|e| {
                let err = Error::from(e);
                let what = match err.kind() {
                    ErrorKind::Tls => {
                        "TLS handshake with Redis failed (is its certificate trusted?)"
                    }
                    ErrorKind::Auth => "Redis refused the credentials",
                    ErrorKind::Timeout => "timed out connecting to Redis",
                    _ => "could not connect to Redis",
                };
                Error::new(err.kind(), what).with_source(err)
            })?;
        Ok(Self::with_conn(conn, settings))
    }

    /// Connects on first use; until then, and while Redis is unreachable,
    /// operations fail and annotated functions read through.
    pub(crate) fn lazy(url: &str, settings: &Settings) -> Result<Self, Error> {
        let client = Self::client(url, settings)?;
        let conn = ConnectionManager::new_lazy_with_config(client, Self::config(settings))?;
        Ok(Self::with_conn(conn, settings))
    }

    fn with_conn(conn: ConnectionManager, settings: &Settings) -> Self {
        RedisBackend {
            conn,
            deadline: settings.command_timeout,
            bust: Script::new(include_str!("../lua/bust.lua")),
            unlock: Script::new(include_str!("../lua/unlock.lua")),
        }
    }

    /// Runs one operation within the command timeout. The client has its
    /// own response timeout, but waiting to reconnect to a server that is
    /// down is not covered by it.
    async fn within<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.deadline, op).await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                "Redis did not answer within the command timeout",
            )),
        }
    }

    pub(crate) async fn lookup(&self, names: &Names) -> Result<Lookup, Error> {
        let mut cmd = redis::Cmd::with_capacity(2 + names.versions().len(), names.byte_len() + 8);
        cmd.arg("MGET").arg(names.entry());
        for version in names.versions() {
            cmd.arg(version);
        }
        let values: Vec<Value> = self.within(cmd.query_async(&mut self.conn.clone())).await?;
        let mut values = values.into_iter();
        let entry = match values.next() {
            Some(Value::BulkString(b)) => Some(Blob::Owned(b)),
            _ => None,
        };
        let versions = values
            .map(|v| match v {
                Value::BulkString(b) => Token::from_bytes(&b),
                _ => None,
            })
            .collect();
        Ok(Lookup { entry, versions })
    }

    pub(crate) async fn ensure(&self, keys: &[&str], ttl: Duration) -> Result<Vec<Token>, Error> {
        let mut pipe = redis::pipe();
        let mut ours = Vec::with_capacity(keys.len());
        for key in keys {
            let token = Token::random();
            ours.push(token);
            pipe.cmd("SET")
                .arg(key)
                .arg(token.as_bytes().as_slice())
                .arg("NX")
                .arg("GET")
                .arg("PX")
                .arg(millis(ttl));
        }
        let old: Vec<Option<Vec<u8>>> = self
            .within(pipe.query_async(&mut self.conn.clone()))
            .await?;
        ours.into_iter()
            .zip(old)
            .map(|(ours, old)| match old {
                None => Ok(ours),
                Some(b) => Token::from_bytes(&b).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Backend,
                        "a version key holds a value cachette did not write",
                    )
                }),
            })
            .collect()
    }

    pub(crate) async fn store(
        &self,
        entry: &str,
        blob: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), Error> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(entry).arg(blob).arg("PX").arg(millis(ttl));
        self.within(cmd.exec_async(&mut self.conn.clone())).await
    }

    pub(crate) async fn try_lock(
        &self,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(token.as_bytes().as_slice())
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl));
        let reply: Value = self.within(cmd.query_async(&mut self.conn.clone())).await?;
        Ok(matches!(reply, Value::Okay))
    }

    pub(crate) async fn unlock(&self, key: &str, token: Token) -> Result<(), Error> {
        let mut call = self.unlock.key(key);
        call.arg(token.as_bytes().as_slice());
        let _: i64 = self
            .within(call.invoke_async(&mut self.conn.clone()))
            .await?;
        Ok(())
    }

    pub(crate) async fn bust(&self, bust: &Bust, ttl: Duration) -> Result<(), Error> {
        if bust.versions.is_empty() && bust.entries.is_empty() {
            return Ok(());
        }
        let mut call = self.bust.prepare_invoke();
        call.key(&bust.versions).key(&bust.entries);
        call.arg(bust.versions.len()).arg(millis(ttl));
        for _ in &bust.versions {
            call.arg(Token::random().as_bytes().as_slice());
        }
        let _: i64 = self
            .within(call.invoke_async(&mut self.conn.clone()))
            .await?;
        Ok(())
    }
}
