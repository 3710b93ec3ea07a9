//! Caches on Upstash's REST protocol: a real redis-server behind the
//! protocol server of `tests/rest-server` (Upstash's own service cannot be
//! reached from where cachette is tested).

use cachette::{Cache, CacheBuilder};
use cachette_rest_server::RestServer;

use super::{Backing, RedisServer};

/// A redis-server and a REST server in front of it.
pub fn start() -> Backing {
    let redis = RedisServer::start();
    let rest = RestServer::start(&redis.url());
    Backing {
        redis,
        rest: Some(rest),
    }
}

impl Backing {
    /// The REST server (this backing must have one).
    pub fn rest(&self) -> &RestServer {
        self.rest.as_ref().expect("a REST server")
    }

    /// A cache from `builder` on the REST server.
    pub async fn upstash(&self, builder: CacheBuilder) -> Cache {
        let rest = self.rest();
        builder
            .connect_upstash(&rest.url, &rest.token)
            .await
            .expect("connect over REST")
    }
}

/// A cache from `builder` on fresh servers, over REST.
pub async fn cache_from(builder: CacheBuilder) -> (Cache, Option<Backing>) {
    let backing = start();
    let cache = backing.upstash(builder).await;
    (cache, Some(backing))
}
