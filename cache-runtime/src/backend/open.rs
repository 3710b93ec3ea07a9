//! Opening a Redis backend: a single server, a cluster or Upstash's REST
//! API, each reached now or on first use.

use super::redis::single::Single;
#[cfg(feature = "upstash")]
use super::within;
use super::{Backend, Servers, Settings};
use crate::error::Error;

impl Backend {
    #[cfg(feature = "redis")]
    pub(super) fn remote(servers: Servers, settings: &Settings) -> Backend {
        Backend {
            servers,
            deadline: settings.command_timeout,
            bust_deadline: settings.command_timeout * 2 + settings.ack_timeout,
            lease: Some(settings.lease.clone()),
        }
    }

    /// A single Redis at `url`, reached now: fails if it cannot be
    /// reached or refuses us.
    #[cfg(feature = "redis")]
    pub(crate) async fn connect(url: &str, settings: &Settings) -> Result<Backend, Error> {
        let single = Single::new(url, settings)?;
        single.connect_now().await?;
        Ok(Backend::remote(Servers::Single(single), settings))
    }

    /// A single Redis at `url`, first reached on first use; until then,
    /// and while it is unreachable, operations fail (and annotated
    /// functions read through).
    #[cfg(feature = "redis")]
    pub(crate) fn connect_lazy(url: &str, settings: &Settings) -> Result<Backend, Error> {
        let single = Single::new(url, settings)?;
        Ok(Backend::remote(Servers::Single(single), settings))
    }

    /// A Redis Cluster through any of `nodes`, reached now: fails if none
    /// can be reached or the cluster refuses us.
    #[cfg(feature = "cluster")]
    pub(crate) async fn connect_cluster(
        nodes: &[String],
        settings: &Settings,
    ) -> Result<Backend, Error> {
        let cluster = super::redis::cluster::Cluster::connect(nodes, settings).await?;
        Ok(Backend::remote(Servers::Cluster(cluster), settings))
    }

    /// A Redis Cluster through any of `nodes`, first reached on first use.
    #[cfg(feature = "cluster")]
    pub(crate) fn connect_cluster_lazy(
        nodes: &[String],
        settings: &Settings,
    ) -> Result<Backend, Error> {
        let cluster = super::redis::cluster::Cluster::lazy(nodes, settings)?;
        Ok(Backend::remote(Servers::Cluster(cluster), settings))
    }

    /// Upstash's REST API at `url` with `token`; asks the server who it
    /// is before returning, and fails if it cannot.
    #[cfg(feature = "upstash")]
    pub(crate) async fn upstash(
        url: &str,
        token: &str,
        settings: &Settings,
    ) -> Result<Backend, Error> {
        let rest = super::redis::rest::Rest::new(url, token, settings)?;
        within(settings.command_timeout, rest.connect_now()).await?;
        Ok(Backend::remote(Servers::Rest(rest), settings))
    }

    /// Upstash's REST API, first reached on first use.
    #[cfg(feature = "upstash")]
    pub(crate) fn upstash_lazy(
        url: &str,
        token: &str,
        settings: &Settings,
    ) -> Result<Backend, Error> {
        let rest = super::redis::rest::Rest::new(url, token, settings)?;
        Ok(Backend::remote(Servers::Rest(rest), settings))
    }
}
