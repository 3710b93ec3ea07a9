//! Whether invalidations wait for replicas.

/// Whether an invalidation returns only once replicas hold it.
///
/// Redis replicates asynchronously: a master that acknowledged an
/// invalidation and then died before its replicas copied it loses it, and
/// the replica promoted in its place would serve the old entries as valid.
/// An invalidation therefore sends `WAIT` on the connection that wrote it
/// and returns only once enough replicas acknowledge it. When they do not
/// within [`CacheBuilder::replica_ack_timeout`](crate::CacheBuilder::replica_ack_timeout),
/// it fails like an invalidation Redis never received: it is kept, retried,
/// and what it names is not served by this process until it is delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicaAcks {
    /// Wait for one replica wherever the master has replicas, and not at
    /// all where it has none. The replicas are learned from the server
    /// (`INFO replication`, or `CLUSTER SLOTS` on a cluster) and asked
    /// again at most once a second. The default.
    #[default]
    Auto,
    /// Never wait.
    Off,
    /// Always wait for this many replicas; fewer is a failed invalidation.
    Require(u32),
}
