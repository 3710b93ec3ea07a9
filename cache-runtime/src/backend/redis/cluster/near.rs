//! The near-cache on a cluster: a lookup's names live on several masters,
//! each read on that master's tracked connection; a kept lookup is served
//! after an ordering round trip on each of those connections, all at once
//! (see `../near.rs`).

use std::sync::Arc;

use super::slots::key_slot;
use super::{Answer, Cluster, Node};
use crate::backend::Lookup;
use crate::error::Error;
use crate::names::Subject;

/// One name for each slot of a lookup on one node.
type Probes<'a> = Vec<(u16, &'a str)>;

impl Cluster {
    /// The lookup kept for `subject`, if every master holding one of its
    /// names still has the connection it was read on, and it is still kept
    /// after an ordering round trip on each; `None`: read the masters.
    pub(crate) async fn near_hit(&self, subject: &Subject<'_>) -> Option<Result<Lookup, Error>> {
        let near = self.near.as_ref()?;
        let names = subject.names();
        let kept = near.get(names.entry())?;
        if !kept.read_the_same(names.versions()) {
            return None;
        }
        let map = self.current()?;
        // Each master, with one name for each slot of the lookup it holds:
        // its ordering round trip reads them, so that a node that no longer
        // serves one of those slots refuses it (a `PING` it would answer).
        // The entry and the epoch share the key's slot.
        let mut nodes: Vec<(Arc<Node>, Probes)> = Vec::new();
        for (name, version) in subject.version_names().zip(names.versions()) {
            let slot = key_slot(name.hash_tag());
            let range = map.master(slot).ok()?;
            let node = crate::sync::lock(&self.nodes).get(&range.master)?.clone();
            match nodes.iter_mut().find(|(n, _)| Arc::ptr_eq(n, &node)) {
                Some((_, probes)) => {
                    if !probes.iter().any(|(s, _)| *s == slot) {
                        probes.push((slot, version));
                    }
                }
                None => {
                    // A node whose near-cache was turned off (its ACL
                    // refused the round trip) serves nothing from memory.
                    node.reads.near()?;
                    nodes.push((node, vec![(slot, version)]));
                }
            }
        }
        let mut sessions = Vec::with_capacity(nodes.len());
        let mut conns = Vec::with_capacity(nodes.len());
        for (node, _) in &nodes {
            let session = node.reads.current()?;
            if !session.tracked || !kept.conns.contains(&session.conn_id) {
                return None;
            }
            conns.push(session.conn_id);
            sessions.push(session);
        }
        conns.sort_unstable();
        conns.dedup();
        if conns != kept.conns {
            return None;
        }
        let ordered = futures_util::future::try_join_all(
            nodes
                .iter()
                .zip(&sessions)
                .map(|((node, probes), session)| node.reads.order(session, probes)),
        )
        .await;
        if ordered.is_err() {
            // A redirection, a node cut off, a timeout: the lookup finds
            // out which, and follows it or reports it.
            return None;
        }
        near.serve(&kept).map(Ok)
    }

    /// The near-cache, if it was configured.
    pub(crate) fn near_cache(&self) -> Option<&super::super::near::Near> {
        self.near.as_deref()
    }
}

/// The connections a lookup's names were read on, sorted, if every one of
/// them is tracked (else it cannot be kept).
pub(super) fn tracked_conns(answers: &[Answer]) -> Option<Vec<u64>> {
    let mut conns = Vec::with_capacity(answers.len());
    for (_, session, node) in answers {
        if !session.tracked || node.reads.near().is_none() {
            return None;
        }
        conns.push(session.conn_id);
    }
    conns.sort_unstable();
    conns.dedup();
    Some(conns)
}
