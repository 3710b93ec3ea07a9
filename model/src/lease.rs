//! Lease reads for the near-cache (`backend/redis/near/lease.rs`): a kept
//! lookup served at once, with no ordering round trip, while a recent one
//! on its connection is known.
//!
//! The steps, named after the runtime's:
//! - time: a global clock in ticks, advanced by `Tick` up to a bound;
//!   clocks are exact here (the runtime pads the wait for two clocks off in
//!   rate by up to 500 ppm each, `lease::wait`);
//! - the namespace's lease (`names::lease_name`, a string of the
//!   microseconds of the process that made it: `Redis::ns`) and its birth
//!   (`Redis::born`: the tick it was created at, on the server's clock;
//!   the runtime takes it from the name's remaining lifetime, given
//!   `EPOCH_TTL` at creation and never renewed: `Read::of`), raised by a
//!   process with a larger lease (`RaiseLease`: a `SET … KEEPTTL`, which
//!   leaves its birth as it was), created again by a process whose round
//!   trip found it missing (`Lease::after_read`, after the reply: `SET NX
//!   PX`, atomically, only if
//!   it is still missing, with that process's own lease, which may be
//!   smaller than the lost one, and a birth of now; a process of the
//!   check, or one outside it, `RecreateLease`), and, as a fault, lost
//!   (`LoseLease`: evicted, flushed, expired; its birth with it);
//! - an ordering round trip of a process with a lease (`Tracking::send`
//!   in `near/tracking.rs`) reads the namespace's lease (`read_cmds`),
//!   taking the tick and the lease the process knows (`Lease::now_us`)
//!   before it is queued; its reply (`Msg::Leased`) teaches the process
//!   the lease (`Lease::learn`: lower applies at once, higher only to
//!   confirmations queued from then on, which is what the lease recorded
//!   with each confirmation does) and records the connection's confirmation
//!   (`Confirmation::record`, on the connection's `Session`,
//!   `link/session.rs`: only a newer one replaces it); reading the lease
//!   makes Redis track it for the connection, so a change of it sends an
//!   invalidation message (`Msg::LeaseChanged`: `Lease::forget`);
//! - a refresh (`Refresh`: `Tracking::refresh`, which a lease hit starts
//!   when half its lease is gone) is a round trip nobody waits for, taken
//!   at any time a lookup is kept from the current connection (at most
//!   once a tick);
//! - a hit (`near/hit.rs`, `on_one`): a lookup kept from the current
//!   connection is served at once if that connection's confirmation `(s,
//!   q)` has `now - s <= min(q, own, known)` (`Confirmation::left` under
//!   `Lease::now_us`); otherwise the ordering round trip as without leases;
//! - the writer (`Backend::bust` and `Backend::leases_passed` in
//!   `backend/mod.rs`): Redis applies the bust, queueing its invalidation
//!   messages, and reads the namespace's lease and its age after it in the
//!   same step (the acknowledgement, at tick `a`: `bust::leased`,
//!   `Read::of`); the bust returns (`BustReturns`) at `a + W + 1`, the 1
//!   standing for the fixed margin, `W` by what it read
//!   (`Lease::writer_wait`):
//!   - missing (`Read::Missing`): the longest lease there is (`MAX_LEASE`;
//!     here the largest any process or the namespace has) if the writer's
//!     process knows leases are in use (a lease of its own, one it read
//!     before: `largest_seen > 0`, or `assume_readers`: `Leases::aware`),
//!     else its own lease (none: it returns at once);
//!   - young (`Read::Young`: created less than `YOUNG` ago, here the
//!     longest lease + 1 ticks, the writer's full wait): the longest lease,
//!     whatever the writer knows, since a process with a smaller lease may
//!     have created it again after a larger one was lost, under which a
//!     reader may still hold a confirmation;
//!   - settled (`Read::Settled`): the largest of the writer's own lease,
//!     the lease read and the largest it read before (`largest_seen`,
//!     which only a settled read feeds);
//! - a reconnect (`Reconnect`: `Link::broken`, then a session with a new
//!   connection and a new, empty confirmation): either the old connection
//!   is gone (its stream and what it kept dropped, its callers read
//!   through), or it lingers (a caller still holds its session): its
//!   stream is still delivered, Redis still tracks its names, and a batch
//!   left open on it is still sent on it (`SendOrderingOld`); what it kept
//!   is no longer served by a hit on the new connection.

use super::*;

/// The lease configuration and its bounds.
#[derive(Clone, Debug)]
pub struct Leases {
    /// Each process's own lease, in ticks (0: no lease reads).
    pub own: Vec<u8>,
    /// The namespace's lease in Redis at the start.
    pub ns: Option<u8>,
    /// Every process knows the namespace's lease at the start (learned on
    /// a connection it no longer has): fewer steps to a lease hit.
    pub known_at_start: bool,
    /// Every process with readers and a lease starts with the entry's
    /// lookup kept from its connection (which tracks its names): a reader
    /// did it before the check began.
    pub kept_at_start: bool,
    /// With `Reconnects::Lingers(p)`: process `p` starts after its
    /// reconnect, its old connection lingering with a refresh batch still
    /// open on it and tracking none of the key's names (they were
    /// invalidated after it read them, and the entry filled again from
    /// the new connection, before the check began: at least a write, a
    /// refill and a reconnect, too deep to explore first). The other
    /// connection's round trip then comes behind no message for the key.
    pub lingering_at_start: bool,
    /// One raise of the namespace's lease to this value.
    pub raise: Option<u8>,
    /// The namespace's lease may be lost once.
    pub lose: bool,
    /// Once lost, it may be created again, once, by a process outside the
    /// check with this lease, smaller than the lost one or not
    /// (`RecreateLease`: its round trip found it missing).
    pub recreate: Option<u8>,
    /// The writer's process takes a missing namespace lease for a lost one
    /// even with no lease of its own and none read
    /// (`CacheBuilder::assume_lease_readers`: `Lease::assume_readers`).
    pub aware: bool,
    /// The largest namespace lease a bust of the writer's process read
    /// before the check began (`Lease::largest_seen`): above 0, the writer
    /// knows leases are in use.
    pub seen_at_start: u8,
    /// Refresh round trips.
    pub refreshes: bool,
    /// One reconnect, of one process.
    pub reconnects: Reconnects,
    pub max_ticks: u8,
}

/// Whether a process may reconnect, and what becomes of its old
/// connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconnects {
    None,
    /// Process `p` reconnects once; the old connection is gone.
    Drops(u8),
    /// Process `p` reconnects once; the old connection lingers.
    Lingers(u8),
}

impl Leases {
    /// Leases `own` (per process) under a namespace lease `ns` that every
    /// process knows, refreshes on, `ticks` ticks, nothing else.
    pub fn new(own: Vec<u8>, ns: Option<u8>, ticks: u8) -> Leases {
        Leases {
            own,
            ns,
            known_at_start: true,
            kept_at_start: true,
            lingering_at_start: false,
            raise: None,
            lose: false,
            recreate: None,
            aware: false,
            seen_at_start: 0,
            refreshes: true,
            reconnects: Reconnects::None,
            max_ticks: ticks,
        }
    }

    /// The longest lease there is (`MAX_LEASE`): the largest any process
    /// or the namespace has, raised or not.
    pub fn longest(&self) -> u8 {
        let own = self.own.iter().copied().max().unwrap_or(0);
        let others = [self.ns, self.raise, self.recreate];
        others.into_iter().flatten().fold(own, u8::max)
    }

    /// `YOUNG`, in ticks: the longest lease and the writer's margin. Past
    /// it, every confirmation taken under a lease lost before the set was
    /// created again has run out.
    pub fn young(&self) -> u8 {
        self.longest() + 1
    }

    /// The writer's process knows leases are in use (`Lease::writer_wait`'s
    /// `aware`): a lease of its own, one it has read, or `assume_readers`.
    fn knows_leases(&self, largest_seen: u8) -> bool {
        self.aware || self.own[WRITER] > 0 || largest_seen > 0
    }
}

impl Protocol {
    /// Lease reads: processes with `readers` readers, one write, a warm
    /// start (the entry filled, every process connected afresh).
    pub fn with_leases(readers: Vec<u8>, leases: Leases, weakening: Weakening) -> Protocol {
        Protocol {
            readers,
            leases: Some(leases),
            warm: true,
            ..Protocol::readers_and_writers(1, weakening)
        }
    }

    /// Process `p`'s own lease (0 without leases).
    pub(crate) fn own(&self, p: usize) -> u8 {
        self.leases.as_ref().map_or(0, |l| l.own[p])
    }

    /// `near/hit.rs`: whether a hit of process `p` now is served under a
    /// lease (`Confirmation::left` under `Lease::now_us`).
    pub(crate) fn lease_hit(&self, s: &State, p: usize) -> bool {
        let own = self.own(p);
        if own == 0 {
            return false;
        }
        let weak = self.weakening;
        let process = &s.processes[p];
        let cap = if weak == Weakening::ReaderUsesItsOwnLargerLease {
            own
        } else {
            own.min(process.known)
        };
        if cap == 0 {
            return false;
        }
        let mut confirmed = process.conn.confirmed;
        if weak == Weakening::OtherConnectionsConfirmation {
            if let Some(old) = &process.old {
                confirmed = confirmed.max(old.confirmed);
            }
        }
        let Some((at, lease)) = confirmed else {
            return false;
        };
        let lease = if weak == Weakening::RaisedLeaseAdoptedAtOnce {
            cap
        } else {
            lease.min(cap)
        };
        let limit = if weak == Weakening::StaleConfirmation {
            2 * lease
        } else {
            lease
        };
        s.now - at <= limit
    }

    /// The reply to ordering batch `batch` of process `p`, as Redis runs it
    /// now: with a lease, the namespace's lease read with it, and the tick
    /// and the lease known taken before it was queued.
    pub(crate) fn ordering(&self, s: &State, p: usize, batch: u8) -> Msg {
        let own = self.own(p);
        if own == 0 {
            return Msg::Ordered(batch);
        }
        let lease = if self.weakening == Weakening::ReaderUsesItsOwnLargerLease {
            own
        } else {
            own.min(s.processes[p].known)
        };
        Msg::Leased {
            batch,
            sent: s.now,
            lease,
            ns: s.redis.ns,
        }
    }

    /// The reply of a leased round trip arrived on process `p`'s current
    /// (or `old`) connection: `Lease::learn`, the lease created again if it
    /// was missing (`Lease::after_read`), and `Confirmation::record`.
    pub(crate) fn learned(
        &self,
        s: &mut State,
        p: usize,
        old: bool,
        sent: u8,
        lease: u8,
        ns: Option<u8>,
    ) {
        let weak = self.weakening;
        s.processes[p].known = ns.unwrap_or(0);
        if ns.is_none() {
            // Missing: created again (`Lease::after_read`, after the
            // reply), only if it still is.
            s.create_lease(self.own(p));
        }
        if lease == 0 {
            return;
        }
        let at = if weak == Weakening::ConfirmationTakenAfterQueuing {
            s.now
        } else {
            sent
        };
        let record = |c: &mut Option<(u8, u8)>| {
            if c.is_none_or(|(t, _)| t < at) {
                *c = Some((at, lease));
            }
        };
        let process = &mut s.processes[p];
        let shared = weak == Weakening::ConfirmationKeptAcrossReconnect;
        match (old, process.old.as_deref_mut()) {
            (true, Some(o)) => {
                record(&mut o.confirmed);
                if shared {
                    record(&mut process.conn.confirmed);
                }
            }
            (_, o) => {
                record(&mut process.conn.confirmed);
                if let (true, Some(o)) = (shared, o) {
                    record(&mut o.confirmed);
                }
            }
        }
    }

    /// `Backend::leases_passed`: the tick the bust acknowledged now returns
    /// at, having read the namespace's lease and its age after its writes
    /// (`Read::of`, `Lease::writer_wait`); `None`: at once.
    pub(crate) fn bust_returns_at(&self, s: &mut State) -> Option<u8> {
        let leases = self.leases.as_ref()?;
        let weak = self.weakening;
        let own = leases.own[WRITER];
        let young = s.redis.born.is_some_and(|b| s.now - b < leases.young())
            && weak != Weakening::YoungLeaseTrusted;
        let lease = match s.redis.ns {
            // `Read::Missing`: lost while a reader may still use it, if the
            // writer knows leases are in use.
            None if leases.knows_leases(s.largest_seen)
                && weak != Weakening::MissingLeaseWaitsNothing =>
            {
                leases.longest()
            }
            None => own.max(s.largest_seen),
            // `Read::Young`: created again, perhaps smaller than the lost
            // one; `largest_seen` is not fed.
            Some(_) if young => leases.longest(),
            // `Read::Settled`.
            Some(read) => {
                s.largest_seen = s.largest_seen.max(read);
                if weak == Weakening::WriterWaitsItsOwnLease {
                    own
                } else {
                    own.max(s.largest_seen)
                }
            }
        };
        if lease == 0 || weak == Weakening::WriterDoesNotWait {
            return None;
        }
        let wait = if weak == Weakening::WriterWaitsLessThanTheLease {
            lease
        } else {
            lease + 1
        };
        Some(s.now + wait)
    }

    /// Process `p` gets a new connection.
    pub(crate) fn reconnect(&self, s: &mut State, p: usize, linger: bool) {
        let weak = self.weakening;
        let process = &mut s.processes[p];
        process.reconnects += 1;
        let old = std::mem::take(&mut process.conn);
        if matches!(
            weak,
            Weakening::ConfirmationKeptAcrossReconnect
                | Weakening::ConfirmationCopiedAcrossReconnect
        ) {
            process.conn.confirmed = old.confirmed;
        }
        if linger {
            // What was read on the old connection is not kept for the new
            // one; what is kept stays, for callers of the old one only.
            for reader in &mut process.readers {
                if let Phase::LookingUp { overtaken } | Phase::Replied(_, overtaken) =
                    &mut reader.phase
                {
                    *overtaken = true;
                }
            }
            process.near_old = process.near.is_some();
            process.old = Some(Box::new(old));
            return;
        }
        // Gone: the near-cache is emptied (the disconnection notice), and
        // a caller waiting on the connection reads through.
        process.near = None;
        process.near_old = false;
        for r in 0..process.readers.len() {
            if let Phase::Replied(_, overtaken) = &mut s.processes[p].readers[r].phase {
                *overtaken = true;
            }
            match s.processes[p].readers[r].phase {
                Phase::Filling(v) => s.finish(p, r, v),
                Phase::BatchFilling => s.finish_batch(p, r),
                Phase::Ordering(..) | Phase::LookingUp { .. } | Phase::Capturing => {
                    s.read_through(p, r)
                }
                _ => {}
            }
        }
    }
}

impl State {
    /// A raise of the namespace's lease to a process's `own` (a `SET …
    /// KEEPTTL`): its birth stays; a missing one is created, born now (the
    /// runtime's has no lifetime then, and reads as young until
    /// `Lease::after_read` gives it one: born later still).
    pub(crate) fn add_lease(&mut self, own: u8) {
        if own == 0 {
            return;
        }
        if self.redis.ns.is_none() {
            self.redis.born = Some(self.now);
        }
        self.redis.ns = Some(self.redis.ns.map_or(own, |n| n.max(own)));
        self.lease_touched();
    }

    /// `Lease::after_read` on a missing lease: the set created again with
    /// the process's lease `own` and a birth of now, atomically and only if
    /// it is still missing (another process may have created it since).
    pub(crate) fn create_lease(&mut self, own: u8) {
        if own == 0 || self.redis.ns.is_some() {
            return;
        }
        self.redis.ns = Some(own);
        self.redis.born = Some(self.now);
        self.lease_touched();
    }

    /// The namespace's lease changed: every connection that read it since
    /// its last change gets an invalidation message.
    pub(crate) fn lease_touched(&mut self) {
        for process in &mut self.processes {
            let old = process.old.as_deref_mut();
            for conn in std::iter::once(&mut process.conn).chain(old) {
                if conn.tracks_lease {
                    conn.tracks_lease = false;
                    conn.stream.push_back(Msg::LeaseChanged);
                }
            }
        }
    }
}
