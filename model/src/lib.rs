//! A model of cachette's invalidation protocol, checked exhaustively with
//! Stateright: every interleaving of the actors' steps, within small
//! bounds, against the promise that a read which starts after a write's
//! bust returned never returns an older value.
//!
//! Actors, each step named after the code that takes it:
//! - the database: one register, written by the writer;
//! - Redis (`backend/redis/`): the entry (a value and the versions its fill
//!   recorded), the key's version and the tag's version, each a random
//!   token scoped by the server process that wrote it; any name can be
//!   lost (evicted, expired); a snapshot can be saved and the server
//!   restarted from it (a new process: a new scope);
//! - cache processes, each with one connection whose server-to-client
//!   stream is a FIFO queue (invalidation messages and replies, in the
//!   order Redis wrote them, delivered with any delay), a near-cache
//!   (`backend/redis/near/`), and readers;
//! - a writer that writes the database, then busts the key or the tag
//!   (`invalidate.rs`: a new version token), and counts as complete once
//!   the bust returned; with `transactions`, it writes inside a database
//!   transaction that other connections do not see until `Commit`, and
//!   its bust is held until the commit (`deferred.rs`).
//!
//! A reader (`read/mod.rs`, `Cache::fetch`):
//! 1. `near_hit`: with a kept lookup, sends an ordering round trip and,
//!    once its reply is in, serves the kept lookup if it is still kept;
//! 2. `lookup`: reads the entry and both versions; a valid entry (recorded
//!    versions equal to the current ones, of this server process) is a
//!    hit, and the lookup is kept unless a message for its names overtook
//!    it (`Reading::keep`);
//! 3. on a miss, `ensure` captures the versions (creating missing ones),
//!    then the body reads the database, then `fill` stores the value with
//!    the captured versions;
//! 4. a second reader of the same process that misses while a fill of the
//!    key is under way follows it (`flight.rs`) and then reads the cache
//!    again.
//!
//! With `Protocol::leases` (`lease.rs`), lease reads (`near/lease.rs`):
//! time in ticks, a confirmation per connection, the namespace's lease in
//! Redis, busts that wait it out, and reconnects.
//!
//! The weakened protocols (`Weakening`) are the mistakes the design
//! avoids; the checks in `tests/` assert each one yields a counterexample.
//! What is not modelled, and why, is in RELIABILITY.md ("The model").

use std::collections::VecDeque;

use stateright::{Model, Property};

mod lease;
pub use lease::{Leases, Reconnects};

/// Which names a message or a lookup concerns.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Name {
    Entry,
    Key,
    Tag,
}

const NAMES: [Name; 3] = [Name::Entry, Name::Key, Name::Tag];

/// A version: a token, and the server process that wrote it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Token {
    pub token: u8,
    pub scope: u8,
}

/// A stored entry: the value and the versions its fill captured.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Entry {
    pub value: u8,
    pub versions: [Token; 2],
}

/// What Redis holds.
#[derive(Clone, Debug, Hash, PartialEq, Eq, Default)]
pub struct Redis {
    pub entry: Option<Entry>,
    pub key: Option<Token>,
    pub tag: Option<Token>,
    /// The key's stampede lock (`lock` strategy), and which reader holds
    /// it.
    pub lock: Option<(u8, u8)>,
    /// With leases, the namespace's lease in ticks (`names::lease_name`: a
    /// string, read 32 bytes at a time).
    pub ns: Option<u8>,
    /// With leases, the tick the namespace's lease was created at (its
    /// birth, on the server's clock: `Read::of` takes it from the set's
    /// remaining lifetime); `None` while it is missing, and for the set
    /// there at the start, created long before (settled).
    pub born: Option<u8>,
}

impl Redis {
    fn version(&self, name: Name) -> Option<Token> {
        match name {
            Name::Key => self.key,
            Name::Tag => self.tag,
            Name::Entry => None,
        }
    }
}

/// A lookup: the entry and the versions, as read together.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Lookup {
    pub entry: Option<Entry>,
    pub versions: [Option<Token>; 2],
}

impl Lookup {
    /// `entry::check`: a hit if the entry recorded exactly the current
    /// versions, written by this server process.
    fn value(&self, scope: u8, weak: Weakening) -> Option<u8> {
        let entry = self.entry?;
        let [Some(k), Some(t)] = self.versions else {
            return None;
        };
        let scoped =
            weak == Weakening::RestartKeepsEntries || (k.scope == scope && t.scope == scope);
        (scoped && entry.versions == [k, t]).then_some(entry.value)
    }
}

/// A message on a connection's server-to-client stream.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Msg {
    /// An invalidation message (`CLIENT TRACKING`).
    Push(Name),
    /// The reply to reader `r`'s command.
    Reply(u8, Reply),
    /// The reply to the ordering round trip (`PING`) of batch `b`, which
    /// every reader that joined the batch waits for.
    Ordered(u8),
    /// With leases, the reply to the ordering round trip of batch `batch`
    /// (a `GETRANGE` of the namespace's lease, `near/tracking.rs`): the tick
    /// it was sent at and the lease the process knew then (`Lease::now_us`,
    /// taken before it was queued), and the namespace's lease Redis held
    /// when it ran it.
    Leased {
        batch: u8,
        sent: u8,
        lease: u8,
        ns: Option<u8>,
    },
    /// An invalidation message for the namespace's lease (`apply` in
    /// `near/tracking.rs`: `Lease::forget`).
    LeaseChanged,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Reply {
    Lookup(Lookup),
    /// `ensure`: the versions, created where missing.
    Captured([Token; 2]),
    Filled,
}

/// Where a reader is.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Phase {
    /// Not started (it reads once).
    Ready,
    /// Waiting for the reply to ordering batch `b`, holding the kept
    /// lookup.
    Ordering(Lookup, u8),
    /// Waiting for its lookup; `overtaken`: a message for its names came
    /// while it was in flight.
    LookingUp {
        overtaken: bool,
    },
    /// Its lookup's reply is in; the caller keeps it (or not) and checks
    /// it in a later step (`Reading::keep` runs on the caller's task,
    /// after the read loop may have applied messages behind the reply).
    Replied(Lookup, bool),
    Capturing,
    /// The body runs: it has the captured versions, if any yet.
    Body(Option<[Token; 2]>),
    /// The body read this value from the database; the fill is next.
    Read(u8, Option<[Token; 2]>),
    Filling(u8),
    /// Following another reader's flight of the same process.
    Following(u8),
    /// Another reader holds the key's lock (`lock` strategy).
    WaitingForLock,
    Done(u8),
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Reader {
    pub phase: Phase,
    /// The newest value whose write had completed when the read started.
    pub must_see: u8,
}

/// A connection (`link/session.rs`, a `Session`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, Default)]
pub struct Conn {
    /// Its server-to-client stream.
    pub stream: VecDeque<Msg>,
    /// Names Redis tracks for it.
    pub tracked: Vec<Name>,
    /// Redis tracks the namespace's lease for it (its round trips read it).
    pub tracks_lease: bool,
    /// The ordering batch callers may still join (not sent yet;
    /// `near/tracking.rs`, `Tracking::join_or_open`).
    pub open: Option<u8>,
    /// With leases, its confirmation (`Session::confirmation`): the tick
    /// taken before the latest ordering round trip whose reply arrived was
    /// queued, and the lease the process knew then.
    pub confirmed: Option<(u8, u8)>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Process {
    /// Its current connection.
    pub conn: Conn,
    /// After a reconnect whose old connection lingers: the old one, still
    /// delivering and tracked (a caller may still hold its session).
    pub old: Option<Box<Conn>>,
    /// The near-cache: the kept lookup of the key.
    pub near: Option<Lookup>,
    /// The kept lookup was read on the old connection: no hit on the
    /// current one serves it (`kept.conns != [session.conn_id]`).
    pub near_old: bool,
    /// The next ordering batch's number (`near/tracking.rs`).
    pub next_batch: u8,
    /// With leases, the namespace's lease as the process last learned it
    /// (`Lease::namespace`; 0: none known).
    pub known: u8,
    pub reconnects: u8,
    /// The tick of its latest refresh (`Tracking::refresh`).
    pub refreshed_at: Option<u8>,
    /// A bust of this process that Redis did not take, kept for retry
    /// (`pending/`): whether it is of the tag, and the write it is for.
    pub pending: Option<(bool, u8)>,
    pub readers: Vec<Reader>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum Writer {
    Ready,
    /// Wrote the database; the bust is next.
    Wrote(u8),
    /// Wrote inside a database transaction that has not committed: other
    /// connections still read the old value.
    Open(u8),
    /// With `BustBeforeCommit`: busted, the transaction still open.
    BustedOpen(u8),
    /// With leases: Redis acknowledged the bust of this value; the bust
    /// returns at this tick (`Backend::leases_passed`).
    Waiting(u8, u8),
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct State {
    pub db: u8,
    pub failed_busts: u8,
    /// The newest value whose write (and bust) returned.
    pub complete: u8,
    pub redis: Redis,
    pub snapshot: Option<Redis>,
    pub scope: u8,
    pub next_token: u8,
    pub processes: Vec<Process>,
    pub writer: Writer,
    pub writes: u8,
    pub losses: u8,
    pub restarts: u8,
    /// A read returned a value older than a write completed before it
    /// started.
    pub stale: bool,
    /// A read was served from process memory (the check reaches it).
    pub near_served: bool,
    /// The newest write whose invalidating call returned in the writer's
    /// process, delivered or kept: what its later reads must see.
    pub returned: u8,
    /// A retried bust on its way to Redis, already cleared from the
    /// pending set (only with `ClearPendingBeforeBust`).
    pub retrying: Option<(bool, u8)>,
    /// With leases: the time, in ticks.
    pub now: u8,
    /// The namespace's lease was raised (`RaiseLease`), or lost.
    pub raised: bool,
    pub lease_lost: bool,
    /// The namespace's lease was created again by a process outside the
    /// check (`RecreateLease`).
    pub recreated: bool,
    /// The largest namespace lease a bust of the writer's process read
    /// settled (`Lease::largest_seen`; from before the check began with
    /// `Leases::seen_at_start`).
    pub largest_seen: u8,
    /// A read was served under a lease.
    pub lease_served: bool,
    /// A read that started after a write completed found a lookup kept
    /// from its connection and a confirmation (the case lease reads must
    /// get right; the check reaches it).
    pub lease_tested: bool,
}

/// The protocol as built, or with one of the mistakes it avoids.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Weakening {
    None,
    /// `ensure` after the body's database read (the stale-set race).
    CaptureAfterRead,
    /// The near-cache serves without an ordering round trip.
    NearWithoutOrdering,
    /// A follower takes its leader's value instead of reading again.
    FollowerTakesLeadersValue,
    /// Versions are not scoped by server process: a restart from a
    /// snapshot brings back entries that validate.
    RestartKeepsEntries,
    /// A bust deletes the entry instead of writing a new version.
    BustDeletes,
    /// A caller joins an ordering round trip already sent before it
    /// arrived.
    JoinSentOrdering,
    /// A process serves what a bust it could not deliver names.
    ServeWhilePending,
    /// A lookup overtaken by a message is kept anyway.
    KeepOvertaken,
    /// The retry clears the kept bust before Redis took it.
    ClearPendingBeforeBust,
    /// A write inside a transaction busts before the commit (the bust is
    /// not deferred to the end of the transaction).
    BustBeforeCommit,
    /// Leases: the bust returns at its acknowledgement.
    WriterDoesNotWait,
    /// Leases: the bust waits the lease `W` but not the margin (it returns
    /// at `a + W`, where a confirmation taken in the acknowledgement's
    /// tick still counts).
    WriterWaitsLessThanTheLease,
    /// Leases: the bust waits the writer's own lease, not the larger
    /// namespace's.
    WriterWaitsItsOwnLease,
    /// Leases: a hit uses a confirmation up to twice its lease old.
    StaleConfirmation,
    /// Leases: a confirmation is the tick its reply arrived, not the tick
    /// before its round trip was queued.
    ConfirmationTakenAfterQueuing,
    /// Leases: a hit uses the newest confirmation of any of its process's
    /// connections (the old one's, after a reconnect).
    OtherConnectionsConfirmation,
    /// Leases: a new connection keeps the old one's confirmation, the same
    /// one (an `Arc` handed on), which the old connection still renews.
    ConfirmationKeptAcrossReconnect,
    /// Leases: a new connection starts with a copy of the old one's
    /// confirmation (harmless: see `tests/check.rs`).
    ConfirmationCopiedAcrossReconnect,
    /// Leases: a reader uses its own lease even when larger than the
    /// namespace's (or when it knows none).
    ReaderUsesItsOwnLargerLease,
    /// Leases: a raised namespace lease applies at once, to confirmations
    /// queued before it was learned too.
    RaisedLeaseAdoptedAtOnce,
    /// Leases: a bust of a process that knows leases are in use takes a
    /// missing namespace lease for none, and waits only its own and the
    /// largest it has read (the runtime before `Read::Missing` waited
    /// `MAX_LEASE`).
    MissingLeaseWaitsNothing,
    /// Leases: a bust that reads a young namespace lease (created again
    /// within `YOUNG`) trusts it, and waits only what it read.
    YoungLeaseTrusted,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Action {
    /// Reader `r` of process `p` starts: `near_hit` (with leases, served at
    /// once under a confirmation: `near/hit.rs`, `on_one`), else `lookup`.
    Start { p: u8, r: u8 },
    /// The next message of process `p`'s stream is applied or delivered.
    Deliver { p: u8 },
    /// The body of reader `r` of process `p` reads the database.
    ReadDb { p: u8, r: u8 },
    /// Its fill (with the weakening, its `ensure` first).
    Fill { p: u8, r: u8 },
    /// Process `p` closes its open ordering batch and sends its `PING`
    /// (with a lease, the `GETRANGE` of the namespace's lease, the tick and
    /// the lease known taken first: `Tracking::send`).
    SendOrdering { p: u8 },
    /// The writer's bust fails (Redis unreachable) and is kept.
    BustFails { tag: bool },
    /// The kept bust is delivered (`pending::retry`) and returns.
    Retry,
    /// With `ClearPendingBeforeBust`: the retried bust reaches Redis.
    RetryLands,
    /// The caller keeps its lookup (unless overtaken) and checks it.
    Keep { p: u8, r: u8 },
    /// A reader waiting for the lock finds it free and reads again.
    LockFreed { p: u8, r: u8 },
    /// A reader stops waiting for the lock (`lock_wait`) and fills.
    LockWaitEnds { p: u8, r: u8 },
    /// The lock's TTL ends (its holder may still be filling).
    LockExpires,
    /// A follower reads again once its leader's flight ended.
    FollowerWakes { p: u8, r: u8 },
    /// The writer writes the database.
    Write,
    /// The writer's bust of the key (or the tag) runs and returns.
    Bust { tag: bool },
    /// The writer's transaction commits.
    Commit,
    /// Redis loses a name (eviction, expiry).
    Lose(Name),
    /// Redis saves a snapshot (`BGSAVE`).
    Save,
    /// Redis restarts from its snapshot: connections are lost.
    Restart,
    /// Leases: one tick passes.
    Tick,
    /// Leases: the next message of process `p`'s old connection.
    DeliverOld { p: u8 },
    /// Leases: the batch left open on process `p`'s old connection is sent
    /// on it (its sending task held the old session).
    SendOrderingOld { p: u8 },
    /// Leases: process `p` opens an ordering round trip nobody waits for,
    /// to renew its confirmation (`Tracking::refresh`, which a lease hit
    /// starts).
    Refresh { p: u8 },
    /// Leases: process `p` gets a new connection (`Link::broken`, then a
    /// new `Session` with no confirmation).
    Reconnect { p: u8 },
    /// Leases: the writer's bust returns, its wait after the
    /// acknowledgement over (`Backend::leases_passed`).
    BustReturns,
    /// Leases: the namespace's lease raised to a process's larger one (a
    /// `SET … KEEPTTL`; its birth stays).
    RaiseLease,
    /// Leases: Redis loses the namespace's lease (evicted, flushed,
    /// expired), its birth with it.
    LoseLease,
    /// Leases: a process outside the check whose round trip found the
    /// namespace's lease missing creates it again with its own lease
    /// (`Lease::after_read`).
    RecreateLease,
}

/// The model: its bounds and the protocol it runs.
#[derive(Clone, Debug)]
pub struct Protocol {
    /// Readers per process (each reads once).
    pub readers: Vec<u8>,
    pub max_writes: u8,
    pub max_losses: u8,
    /// Restarts from a snapshot (0 or 1).
    pub max_restarts: u8,
    /// Busts that fail and are kept for retry.
    pub max_failed_busts: u8,
    /// Misses take the key's lock (`strategy = "lock"`), which may expire.
    pub locks: bool,
    /// The writer writes inside a database transaction, its busts held
    /// until the commit (`deferred.rs`).
    pub transactions: bool,
    /// Lease reads, and their bounds (`lease.rs`).
    pub leases: Option<Leases>,
    /// Start with the entry filled (value 0, valid) and every process
    /// connected afresh (tracking nothing), instead of an empty Redis.
    pub warm: bool,
    pub weakening: Weakening,
}

impl Protocol {
    /// Two processes, one of them with two readers (for flights), and
    /// `writes` writes; no loss, no restart.
    pub fn readers_and_writers(writes: u8, weakening: Weakening) -> Protocol {
        Protocol {
            readers: vec![2, 1],
            max_writes: writes,
            max_losses: 0,
            max_restarts: 0,
            max_failed_busts: 0,
            locks: false,
            transactions: false,
            leases: None,
            warm: false,
            weakening,
        }
    }

    /// Two processes, one with three readers (two of them sharing an
    /// ordering round trip after a third kept the lookup), one write.
    pub fn shared_orderings(weakening: Weakening) -> Protocol {
        Protocol {
            readers: vec![3, 1],
            ..Protocol::readers_and_writers(1, weakening)
        }
    }

    /// Two processes (one with two readers), one write, and the `lock`
    /// strategy, whose lock may expire under its holder.
    pub fn with_locks(weakening: Weakening) -> Protocol {
        Protocol {
            locks: true,
            ..Protocol::readers_and_writers(1, weakening)
        }
    }

    /// Two processes (one with two readers), one write made inside a
    /// database transaction: another connection reads only what has
    /// committed, and the bust is held until the commit (`deferred`).
    pub fn with_transactions(weakening: Weakening) -> Protocol {
        Protocol {
            transactions: true,
            ..Protocol::readers_and_writers(1, weakening)
        }
    }

    /// Two processes (one with two readers), one write, and a lost name, a
    /// restart from a snapshot or a bust that fails and is retried.
    pub fn with_faults(
        losses: u8,
        restarts: u8,
        failed_busts: u8,
        weakening: Weakening,
    ) -> Protocol {
        Protocol {
            max_losses: losses,
            max_restarts: restarts,
            max_failed_busts: failed_busts,
            ..Protocol::readers_and_writers(1, weakening)
        }
    }
}

/// The process the writer runs in (its kept busts are that process's).
const WRITER: usize = 1;

impl State {
    /// `invalidate`: a new version of the key or the tag (or, weakened,
    /// the entry deleted).
    fn bust(&mut self, tag: bool, weak: Weakening) {
        if weak == Weakening::BustDeletes {
            self.redis.entry = None;
            self.touched(Name::Entry);
        } else if tag {
            self.redis.tag = Some(self.token());
            self.touched(Name::Tag);
        } else {
            self.redis.key = Some(self.token());
            self.touched(Name::Key);
        }
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        Token {
            token: self.next_token,
            scope: self.scope,
        }
    }

    /// Redis changed `name`: every connection tracking it gets a message,
    /// and stops tracking it (Redis's tracking table).
    fn touched(&mut self, name: Name) {
        for process in &mut self.processes {
            let old = process.old.as_deref_mut();
            for conn in std::iter::once(&mut process.conn).chain(old) {
                if let Some(i) = conn.tracked.iter().position(|n| *n == name) {
                    conn.tracked.swap_remove(i);
                    conn.stream.push_back(Msg::Push(name));
                }
            }
        }
    }

    fn track(&mut self, p: usize) {
        for name in NAMES {
            if !self.processes[p].conn.tracked.contains(&name) {
                self.processes[p].conn.tracked.push(name);
            }
        }
    }

    /// `lookup`, run by Redis for reader `r` of process `p`.
    fn lookup(&mut self, p: usize, r: usize) {
        let lookup = Lookup {
            entry: self.redis.entry,
            versions: [self.redis.key, self.redis.tag],
        };
        self.track(p);
        self.processes[p]
            .conn
            .stream
            .push_back(Msg::Reply(r as u8, Reply::Lookup(lookup)));
        self.processes[p].readers[r].phase = Phase::LookingUp { overtaken: false };
    }

    /// `ensure`, run by Redis: versions created where missing (or written
    /// by another server process, which a restart leaves behind).
    fn ensure(&mut self) -> [Token; 2] {
        let scope = self.scope;
        let mut versions = [Token { token: 0, scope: 0 }; 2];
        for (i, name) in [Name::Key, Name::Tag].into_iter().enumerate() {
            let current = self.redis.version(name).filter(|t| t.scope == scope);
            let token = match current {
                Some(t) => t,
                None => {
                    let t = self.token();
                    match name {
                        Name::Key => self.redis.key = Some(t),
                        _ => self.redis.tag = Some(t),
                    }
                    self.touched(name);
                    t
                }
            };
            versions[i] = token;
        }
        versions
    }

    /// The reply to ordering batch `batch` of process `p` arrived: each
    /// reader in it is served its kept lookup if it is still kept.
    fn ordered(&mut self, p: usize, batch: u8, weak: Weakening) {
        for r in 0..self.processes[p].readers.len() {
            let Phase::Ordering(kept, b) = self.processes[p].readers[r].phase else {
                continue;
            };
            if b != batch {
                continue;
            }
            // `Near::still`: the same lookup is kept.
            let still = self.processes[p].near == Some(kept);
            match kept.value(self.scope, weak).filter(|_| still) {
                Some(v) => {
                    self.near_served = true;
                    self.finish(p, r, v);
                }
                None => self.lookup(p, r),
            }
        }
    }

    fn finish(&mut self, p: usize, r: usize, value: u8) {
        let reader = &mut self.processes[p].readers[r];
        if value < reader.must_see {
            self.stale = true;
        }
        reader.phase = Phase::Done(value);
    }

    /// Whether another reader of process `p` has a fill of the key under
    /// way (its flight).
    fn leader(&self, p: usize, r: usize) -> Option<usize> {
        self.processes[p]
            .readers
            .iter()
            .enumerate()
            .position(|(i, x)| {
                i != r
                    && matches!(
                        x.phase,
                        Phase::Capturing | Phase::Body(_) | Phase::Read(..) | Phase::Filling(_)
                    )
            })
    }

    /// A miss: following a flight of the process already under way, or
    /// `ensure` (run by Redis when it is sent) and then the body; with the
    /// weakening, the body first.
    fn miss(&mut self, p: usize, r: usize, weak: Weakening, locks: bool) {
        if let Some(leader) = self.leader(p, r) {
            self.processes[p].readers[r].phase = Phase::Following(leader as u8);
        } else if locks {
            // `lock_or_wait`: `SET NX` of the key's lock, or wait.
            match self.redis.lock {
                None => {
                    self.redis.lock = Some((p as u8, r as u8));
                    self.capture(p, r, weak);
                }
                Some(_) => self.processes[p].readers[r].phase = Phase::WaitingForLock,
            }
        } else {
            self.capture(p, r, weak);
        }
    }

    /// `ensure` (run by Redis when it is sent), then the body; with the
    /// weakening, the body first.
    fn capture(&mut self, p: usize, r: usize, weak: Weakening) {
        if weak == Weakening::CaptureAfterRead {
            self.processes[p].readers[r].phase = Phase::Body(None);
        } else {
            let versions = self.ensure();
            self.processes[p]
                .conn
                .stream
                .push_back(Msg::Reply(r as u8, Reply::Captured(versions)));
            self.processes[p].readers[r].phase = Phase::Capturing;
        }
    }
}

impl Model for Protocol {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let mut redis = Redis::default();
        let mut next_token = 0;
        if self.warm {
            let key = Token { token: 1, scope: 0 };
            let tag = Token { token: 2, scope: 0 };
            redis.key = Some(key);
            redis.tag = Some(tag);
            redis.entry = Some(Entry {
                value: 0,
                versions: [key, tag],
            });
            next_token = 2;
        }
        redis.ns = self.leases.as_ref().and_then(|l| l.ns);
        let known = match &self.leases {
            Some(l) if l.known_at_start => l.ns.unwrap_or(0),
            _ => 0,
        };
        let warm = Lookup {
            entry: redis.entry,
            versions: [redis.key, redis.tag],
        };
        let lingering = |p: usize| match &self.leases {
            Some(l) => l.lingering_at_start && l.reconnects == Reconnects::Lingers(p as u8),
            None => false,
        };
        let kept = |p: usize| match &self.leases {
            Some(l) if l.kept_at_start && self.warm && l.own[p] > 0 && self.readers[p] > 0 => {
                Some(warm)
            }
            _ => None,
        };
        vec![State {
            db: 0,
            failed_busts: 0,
            complete: 0,
            redis,
            snapshot: None,
            scope: 0,
            next_token,
            processes: self
                .readers
                .iter()
                .enumerate()
                .map(|(p, n)| Process {
                    conn: Conn {
                        tracked: match kept(p) {
                            Some(_) => NAMES.to_vec(),
                            None => Vec::new(),
                        },
                        ..Conn::default()
                    },
                    old: lingering(p).then(|| {
                        Box::new(Conn {
                            open: Some(0),
                            ..Conn::default()
                        })
                    }),
                    near: kept(p),
                    near_old: false,
                    next_batch: lingering(p) as u8,
                    known,
                    reconnects: lingering(p) as u8,
                    refreshed_at: None,
                    pending: None,
                    readers: (0..*n)
                        .map(|_| Reader {
                            phase: Phase::Ready,
                            must_see: 0,
                        })
                        .collect(),
                })
                .collect(),
            writer: Writer::Ready,
            writes: 0,
            losses: 0,
            restarts: 0,
            stale: false,
            near_served: false,
            returned: 0,
            retrying: None,
            now: 0,
            raised: false,
            lease_lost: false,
            recreated: false,
            largest_seen: self.leases.as_ref().map_or(0, |l| l.seen_at_start),
            lease_served: false,
            lease_tested: false,
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        for (p, process) in state.processes.iter().enumerate() {
            let p8 = p as u8;
            if !process.conn.stream.is_empty() {
                actions.push(Action::Deliver { p: p8 });
            }
            if process.conn.open.is_some() {
                actions.push(Action::SendOrdering { p: p8 });
            }
            if let Some(old) = &process.old {
                if !old.stream.is_empty() {
                    actions.push(Action::DeliverOld { p: p8 });
                }
                if old.open.is_some() {
                    actions.push(Action::SendOrderingOld { p: p8 });
                }
            }
            if let Some(leases) = &self.leases {
                if leases.refreshes
                    && leases.own[p] > 0
                    && process.near.is_some()
                    && !process.near_old
                    && process.conn.open.is_none()
                    && process.refreshed_at != Some(state.now)
                {
                    actions.push(Action::Refresh { p: p8 });
                }
                let reconnects = match leases.reconnects {
                    Reconnects::Drops(q) | Reconnects::Lingers(q) => q == p8,
                    Reconnects::None => false,
                };
                if reconnects && process.reconnects == 0 {
                    actions.push(Action::Reconnect { p: p8 });
                }
            }
            for (r, reader) in process.readers.iter().enumerate() {
                let r8 = r as u8;
                match reader.phase {
                    Phase::Ready => actions.push(Action::Start { p: p8, r: r8 }),
                    Phase::Body(_) => actions.push(Action::ReadDb { p: p8, r: r8 }),
                    Phase::Read(..) => actions.push(Action::Fill { p: p8, r: r8 }),
                    Phase::Replied(..) => actions.push(Action::Keep { p: p8, r: r8 }),
                    Phase::WaitingForLock => {
                        if state.redis.lock.is_none() {
                            actions.push(Action::LockFreed { p: p8, r: r8 });
                        }
                        actions.push(Action::LockWaitEnds { p: p8, r: r8 });
                    }
                    Phase::Following(leader) => {
                        let done = !matches!(
                            process.readers[leader as usize].phase,
                            Phase::Capturing | Phase::Body(_) | Phase::Read(..) | Phase::Filling(_)
                        );
                        if done {
                            actions.push(Action::FollowerWakes { p: p8, r: r8 });
                        }
                    }
                    _ => {}
                }
            }
        }
        match state.writer {
            Writer::Ready if state.writes < self.max_writes => actions.push(Action::Write),
            Writer::Open(_) => {
                actions.push(Action::Commit);
                if self.weakening == Weakening::BustBeforeCommit {
                    actions.push(Action::Bust { tag: false });
                    actions.push(Action::Bust { tag: true });
                }
            }
            Writer::BustedOpen(_) => actions.push(Action::Commit),
            Writer::Waiting(_, until) if state.now >= until => actions.push(Action::BustReturns),
            Writer::Wrote(_) => {
                actions.push(Action::Bust { tag: false });
                // With leases, key busts only: a tag bust takes the same
                // steps.
                if self.leases.is_none() {
                    actions.push(Action::Bust { tag: true });
                }
                if state.failed_busts < self.max_failed_busts {
                    actions.push(Action::BustFails { tag: false });
                    actions.push(Action::BustFails { tag: true });
                }
            }
            _ => {}
        }
        if state.processes[WRITER].pending.is_some() {
            actions.push(Action::Retry);
        }
        if state.retrying.is_some() {
            actions.push(Action::RetryLands);
        }
        if state.redis.lock.is_some() {
            actions.push(Action::LockExpires);
        }
        if state.losses < self.max_losses {
            for name in NAMES {
                actions.push(Action::Lose(name));
            }
        }
        if state.restarts < self.max_restarts {
            if state.snapshot.is_none() {
                actions.push(Action::Save);
            } else {
                actions.push(Action::Restart);
            }
        }
        if let Some(leases) = &self.leases {
            if state.now < leases.max_ticks {
                actions.push(Action::Tick);
            }
            if leases.raise.is_some() && !state.raised {
                actions.push(Action::RaiseLease);
            }
            if leases.lose && !state.lease_lost {
                actions.push(Action::LoseLease);
            }
            if leases.recreate.is_some() && !state.recreated && state.redis.ns.is_none() {
                actions.push(Action::RecreateLease);
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        let weak = self.weakening;
        match action {
            Action::Start { p, r } => {
                let (p, r) = (p as usize, r as usize);
                // What the caller must see: every completed write, and in
                // the writer's process the write of a bust it keeps.
                let pending = s.processes[p].pending.map_or(0, |(_, v)| v);
                let returned = if p == WRITER { s.returned } else { 0 };
                s.processes[p].readers[r].must_see = s.complete.max(returned);
                if pending > 0 && weak != Weakening::ServeWhilePending {
                    // `pending.blocks`: read through.
                    let db = s.db;
                    s.finish(p, r, db);
                    return Some(s);
                }
                // A lookup kept from an old connection is not served by a
                // hit on the current one.
                let near = s.processes[p].near.filter(|_| !s.processes[p].near_old);
                let process = &s.processes[p];
                let confirmed = process.conn.confirmed.is_some()
                    || process.old.as_ref().is_some_and(|o| o.confirmed.is_some());
                if near.is_some() && confirmed && process.readers[r].must_see > 0 {
                    s.lease_tested = true;
                }
                match near {
                    Some(kept) if weak == Weakening::NearWithoutOrdering => {
                        match kept.value(s.scope, weak) {
                            Some(v) => {
                                s.near_served = true;
                                s.finish(p, r, v);
                            }
                            None => s.lookup(p, r),
                        }
                    }
                    Some(kept) if self.lease_hit(&s, p) => match kept.value(s.scope, weak) {
                        // `near/hit.rs`: served under a lease, at once.
                        Some(v) => {
                            s.near_served = true;
                            s.lease_served = true;
                            s.finish(p, r, v);
                        }
                        None => s.lookup(p, r),
                    },
                    Some(kept) => {
                        // `near_hit`: joins the open ordering batch, or
                        // opens one (`Tracking::order`).
                        let process = &mut s.processes[p];
                        let sent = process.conn.stream.iter().find_map(|m| match m {
                            Msg::Ordered(b) | Msg::Leased { batch: b, .. } => Some(*b),
                            _ => None,
                        });
                        let batch = match (process.conn.open, sent) {
                            (Some(b), _) => b,
                            (None, Some(b)) if weak == Weakening::JoinSentOrdering => b,
                            _ => {
                                let b = process.next_batch;
                                process.next_batch += 1;
                                process.conn.open = Some(b);
                                b
                            }
                        };
                        process.readers[r].phase = Phase::Ordering(kept, batch);
                    }
                    None => s.lookup(p, r),
                }
            }
            Action::Deliver { p } | Action::DeliverOld { p } => {
                let old = matches!(action, Action::DeliverOld { .. });
                let p = p as usize;
                let process = &mut s.processes[p];
                let conn = match process.old.as_deref_mut() {
                    Some(o) if old => o,
                    _ if old => return None,
                    _ => &mut process.conn,
                };
                let msg = conn.stream.pop_front()?;
                match msg {
                    Msg::Push(name) => {
                        // `near::apply`: what read the name is dropped, and
                        // lookups in flight are not kept.
                        let _ = name;
                        s.processes[p].near = None;
                        for reader in &mut s.processes[p].readers {
                            if let Phase::LookingUp { overtaken } | Phase::Replied(_, overtaken) =
                                &mut reader.phase
                            {
                                *overtaken = true;
                            }
                        }
                    }
                    Msg::Ordered(batch) => s.ordered(p, batch, weak),
                    Msg::Leased {
                        batch,
                        sent,
                        lease,
                        ns,
                    } => {
                        self.learned(&mut s, p, old, sent, lease, ns);
                        s.ordered(p, batch, weak);
                    }
                    // `Lease::forget`: none known until read again.
                    Msg::LeaseChanged => s.processes[p].known = 0,
                    Msg::Reply(r, reply) => {
                        let r = r as usize;
                        let phase = s.processes[p].readers[r].phase;
                        match (phase, reply) {
                            (Phase::LookingUp { overtaken }, Reply::Lookup(lookup)) => {
                                s.processes[p].readers[r].phase = Phase::Replied(lookup, overtaken);
                            }
                            (Phase::Capturing, Reply::Captured(versions)) => {
                                s.processes[p].readers[r].phase = Phase::Body(Some(versions));
                            }
                            (Phase::Filling(v), Reply::Filled) => {
                                // The lock is released by its holder only.
                                if s.redis.lock == Some((p as u8, r as u8)) {
                                    s.redis.lock = None;
                                }
                                s.finish(p, r, v)
                            }
                            _ => return None,
                        }
                    }
                }
            }
            Action::ReadDb { p, r } => {
                let (p, r) = (p as usize, r as usize);
                let Phase::Body(captured) = s.processes[p].readers[r].phase else {
                    return None;
                };
                s.processes[p].readers[r].phase = Phase::Read(s.db, captured);
            }
            Action::Fill { p, r } => {
                let (p, r) = (p as usize, r as usize);
                let Phase::Read(value, captured) = s.processes[p].readers[r].phase else {
                    return None;
                };
                let versions = match captured {
                    Some(v) => v,
                    // The weakening captures now, after the read.
                    None => s.ensure(),
                };
                // `fill`: the value under the versions captured.
                s.redis.entry = Some(Entry { value, versions });
                s.touched(Name::Entry);
                s.processes[p]
                    .conn
                    .stream
                    .push_back(Msg::Reply(r as u8, Reply::Filled));
                s.processes[p].readers[r].phase = Phase::Filling(value);
            }
            Action::FollowerWakes { p, r } => {
                let (p, r) = (p as usize, r as usize);
                let Phase::Following(leader) = s.processes[p].readers[r].phase else {
                    return None;
                };
                match s.processes[p].readers[leader as usize].phase {
                    Phase::Done(v) if weak == Weakening::FollowerTakesLeadersValue => {
                        s.finish(p, r, v)
                    }
                    _ => s.lookup(p, r),
                }
            }
            Action::Write if self.transactions => {
                s.writes += 1;
                s.writer = Writer::Open(s.db + 1);
            }
            Action::Write => {
                s.db += 1;
                s.writes += 1;
                s.writer = Writer::Wrote(s.db);
            }
            Action::Commit => match s.writer {
                // `deferred`: the held bust is sent once the commit is done.
                Writer::Open(value) => {
                    s.db = value;
                    s.writer = Writer::Wrote(value);
                }
                Writer::BustedOpen(value) => {
                    s.db = value;
                    s.complete = value;
                    s.writer = Writer::Ready;
                }
                _ => return None,
            },
            Action::Bust { tag } => match s.writer {
                Writer::Wrote(value) => {
                    s.bust(tag, weak);
                    match self.bust_returns_at(&mut s) {
                        Some(at) => s.writer = Writer::Waiting(value, at),
                        None => {
                            s.complete = value;
                            s.writer = Writer::Ready;
                        }
                    }
                }
                Writer::Open(value) => {
                    s.bust(tag, weak);
                    s.writer = Writer::BustedOpen(value);
                }
                _ => return None,
            },
            Action::BustFails { tag } => {
                let Writer::Wrote(value) = s.writer else {
                    return None;
                };
                s.failed_busts += 1;
                s.returned = value;
                s.processes[WRITER].pending = Some((tag, value));
                s.writer = Writer::Ready;
            }
            Action::Retry => {
                let (tag, value) = s.processes[WRITER].pending.take()?;
                if weak == Weakening::ClearPendingBeforeBust {
                    s.retrying = Some((tag, value));
                    return Some(s);
                }
                s.bust(tag, weak);
                s.complete = s.complete.max(value);
            }
            Action::RetryLands => {
                let (tag, value) = s.retrying.take()?;
                s.bust(tag, weak);
                s.complete = s.complete.max(value);
            }
            Action::Keep { p, r } => {
                let (p, r) = (p as usize, r as usize);
                let Phase::Replied(lookup, overtaken) = s.processes[p].readers[r].phase else {
                    return None;
                };
                if lookup.entry.is_some() && (!overtaken || weak == Weakening::KeepOvertaken) {
                    // `Reading::keep`.
                    s.processes[p].near = Some(lookup);
                    s.processes[p].near_old = false;
                }
                match lookup.value(s.scope, weak) {
                    Some(v) => s.finish(p, r, v),
                    None => s.miss(p, r, weak, self.locks),
                }
            }
            Action::LockFreed { p, r } => {
                let (p, r) = (p as usize, r as usize);
                if s.processes[p].readers[r].phase != Phase::WaitingForLock {
                    return None;
                }
                s.lookup(p, r);
            }
            Action::LockWaitEnds { p, r } => {
                let (p, r) = (p as usize, r as usize);
                if s.processes[p].readers[r].phase != Phase::WaitingForLock {
                    return None;
                }
                s.capture(p, r, weak);
            }
            Action::LockExpires => s.redis.lock = None,
            Action::SendOrdering { p } | Action::SendOrderingOld { p } => {
                let old = matches!(action, Action::SendOrderingOld { .. });
                let p = p as usize;
                let batch = match s.processes[p].old.as_deref_mut() {
                    Some(o) if old => o.open.take()?,
                    _ if old => return None,
                    _ => s.processes[p].conn.open.take()?,
                };
                let msg = self.ordering(&s, p, batch);
                let process = &mut s.processes[p];
                let conn = match process.old.as_deref_mut() {
                    Some(o) if old => o,
                    _ => &mut process.conn,
                };
                if let Msg::Leased { .. } = msg {
                    conn.tracks_lease = true;
                }
                conn.stream.push_back(msg);
            }
            Action::Refresh { p } => {
                let process = &mut s.processes[p as usize];
                if process.conn.open.is_some() {
                    return None;
                }
                process.conn.open = Some(process.next_batch);
                process.next_batch += 1;
                process.refreshed_at = Some(s.now);
            }
            Action::Reconnect { p } => {
                let linger = matches!(self.leases.as_ref()?.reconnects, Reconnects::Lingers(_));
                self.reconnect(&mut s, p as usize, linger);
            }
            Action::Tick => s.now += 1,
            Action::BustReturns => {
                let Writer::Waiting(value, at) = s.writer else {
                    return None;
                };
                if s.now < at {
                    return None;
                }
                s.complete = value;
                s.writer = Writer::Ready;
            }
            Action::RaiseLease => {
                s.raised = true;
                s.add_lease(self.leases.as_ref()?.raise?);
            }
            Action::LoseLease => {
                s.lease_lost = true;
                s.redis.ns = None;
                s.redis.born = None;
                s.lease_touched();
            }
            Action::RecreateLease => {
                s.recreated = true;
                s.create_lease(self.leases.as_ref()?.recreate?);
            }
            Action::Lose(name) => {
                s.losses += 1;
                match name {
                    Name::Entry => s.redis.entry = None,
                    Name::Key => s.redis.key = None,
                    Name::Tag => s.redis.tag = None,
                }
                s.touched(name);
            }
            Action::Save => s.snapshot = Some(s.redis.clone()),
            Action::Restart => {
                s.restarts += 1;
                s.redis = s.snapshot.take()?;
                s.scope += 1;
                // Every connection is lost: its stream with it, the
                // near-cache is emptied (the disconnection notice), and a
                // caller waiting on it reads through (runs its body).
                let db = s.db;
                for p in 0..s.processes.len() {
                    let process = &mut s.processes[p];
                    process.conn = Conn::default();
                    process.old = None;
                    process.near = None;
                    process.near_old = false;
                    for r in 0..process.readers.len() {
                        // Its connection is gone: what it read is not kept.
                        if let Phase::Replied(_, overtaken) = &mut s.processes[p].readers[r].phase {
                            *overtaken = true;
                        }
                        let waiting = matches!(
                            s.processes[p].readers[r].phase,
                            Phase::Ordering(..)
                                | Phase::LookingUp { .. }
                                | Phase::Capturing
                                | Phase::Filling(_)
                        );
                        if waiting {
                            let value = match s.processes[p].readers[r].phase {
                                Phase::Filling(v) => v,
                                _ => db,
                            };
                            s.finish(p, r, value);
                        }
                    }
                }
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![
            Property::always(
                "no read returns a value older than a completed write",
                |_, s: &State| !s.stale,
            ),
            Property::sometimes("a read is served from process memory", |_, s: &State| {
                s.near_served
            }),
        ];
        if self.leases.is_some() {
            properties.push(Property::sometimes(
                "a read is served under a lease",
                |_, s: &State| s.lease_served,
            ));
            properties.push(Property::sometimes(
                "a read that started after a write completed finds a kept lookup and a confirmation",
                |_, s: &State| s.lease_tested,
            ));
        }
        properties
    }
}
