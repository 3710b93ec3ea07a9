//! The Redis backend, on a single Redis or a Redis Cluster.
//!
//! Costs, in round trips of latency:
//! - a lookup is one pipeline of bounded `GETRANGE`s, of the entry and of
//!   each of its versions (no name is ever read whole). On a cluster it is
//!   one pipeline per slot among them, each on the master of its slot, all
//!   sent at once: the entry and its key's version share a slot, each
//!   tag's version has its own;
//! - a fill is one `SET ... PX`; creating missing versions is one pipeline
//!   of the adopt script, a call per version (on a cluster, one call per
//!   version, sent at once);
//! - a bust of any number of keys and tags is one `EVALSHA` of
//!   `lua/bust.lua` on a single Redis; on a cluster, one pipeline of plain
//!   `SET`s per master touched, sent at once. Either way a `WAIT` in the
//!   same pipeline makes it return only once a replica holds it (see
//!   [`ReplicaAcks`](crate::ReplicaAcks));
//! - a stampede lock is `SET NX PX` with a random token, released by
//!   `lua/unlock.lua` only by its owner.
//!
//! Every server is reached through `link::Link`s, whose connections are bound
//! to the origin of the server they reached (its run and replication ids,
//! I10): versions are written and judged in that origin. Busts (and the questions about replicas) have
//! links of their own: a `WAIT` blocks the connection it is sent on, and
//! reads must not queue behind it.

pub(crate) mod bust;
#[cfg(feature = "cluster")]
pub(crate) mod cluster;
pub(crate) mod connect;
pub(crate) mod link;
pub(crate) mod lookup;
pub(crate) mod near;
#[cfg(feature = "upstash")]
pub(crate) mod rest;
pub(crate) mod scripts;
pub(crate) mod single;
pub(crate) mod wire;

pub(crate) use connect::Settings;
