//! The pending set's rules, one interleaving at a time.

use super::*;

fn bust(names: &[&str]) -> Bust {
    Bust::of(names, std::iter::empty::<&str>())
}

/// A bust kept while a delivery that emptied the set has just let go
/// of the lock (the delivery task preempted there): the flag reads
/// check must still say the set holds something. It was once cleared
/// after the lock was let go, hiding the new bust from every read.
#[test]
fn a_bust_kept_right_after_the_set_emptied_is_never_hidden() {
    for covering in [false, true] {
        let pending = Pending::new(100);
        pending.add(&bust(&["a"]));
        let adder = pending.clone();
        pause_after_unlock(Some(Box::new(move || {
            std::thread::scope(|s| {
                s.spawn(|| adder.add(&bust(&["b"])));
            });
        })));
        let (work, generation) = pending.snapshot();
        if covering {
            // A later bust of `a` was delivered.
            pending.covered(&bust(&["a"]), generation);
        } else {
            let claim = pending.claim().expect("nothing else delivers");
            pending.delivered(&work, generation, claim);
        }
        pause_after_unlock(None);
        assert!(!pending.state().is_empty(), "`b` is kept");
        assert!(
            pending.any(),
            "`b` is hidden from reads (covering: {covering})"
        );
        assert!(pending.claim().is_some(), "a task can be started for `b`");
    }
}

#[test]
fn a_delivery_does_not_clear_a_bust_that_failed_after_its_snapshot() {
    let pending = Pending::new(100);
    pending.add(&bust(&["a", "b"]));
    let claim = pending.claim().expect("starts the retry task");
    let (snapshot, generation) = pending.snapshot();
    // While the snapshot is on its way, a newer bust of `a` fails.
    pending.add(&bust(&["a"]));
    assert!(pending.claim().is_none(), "the task already runs");
    let (after, claim) = pending.delivered(&snapshot, generation, claim);
    assert_eq!(after, After::More);
    assert_eq!(pending.len(), 1, "`a` is still pending");
    let (snapshot, generation) = pending.snapshot();
    let (after, claim) = pending.delivered(&snapshot, generation, claim.unwrap());
    assert_eq!((after, claim.is_none()), (After::Done, true));
    assert_eq!(pending.len(), 0);
    assert!(!pending.any());
}

#[test]
fn a_claim_dropped_before_its_task_ran_lets_the_next_caller_start_one() {
    let pending = Pending::new(100);
    pending.add(&bust(&["a"]));
    let claim = pending.claim().unwrap();
    assert!(pending.claim().is_none());
    drop(claim); // the task was dropped unpolled
    assert!(pending.claim().is_some(), "no task would deliver `a`");
}

#[test]
fn a_lapsed_lease_is_taken_over_and_its_task_told_to_stop() {
    let pending = Pending::new(100);
    pending.add(&bust(&["a"]));
    let first = pending.claim().unwrap();
    assert!(pending.renew(&first, Duration::ZERO));
    std::thread::sleep(Duration::from_millis(2));
    let second = pending.claim().expect("the first task stopped renewing");
    assert!(!pending.renew(&first, Duration::from_secs(1)), "superseded");
    assert!(pending.renew(&second, Duration::from_secs(1)));
    drop(first); // does not release the second's lease
    assert!(pending.claim().is_none());
}

#[test]
fn names_are_delivered_a_chunk_at_a_time() {
    let pending = Pending::new(10_000);
    let names: Vec<String> = (0..1_200).map(|i| format!("k{i}")).collect();
    pending.add(&Bust::of(&names, std::iter::empty::<&str>()));
    let mut claim = pending.claim().unwrap();
    let mut rounds = 0;
    loop {
        let (work, generation) = pending.snapshot();
        let Work::Names(chunk) = &work else {
            panic!("names, not everything")
        };
        assert!(chunk.len() <= CHUNK);
        rounds += 1;
        match pending.delivered(&work, generation, claim) {
            (After::Done, _) => break,
            (After::More, Some(kept)) => claim = kept,
            (After::More, None) => unreachable!(),
        }
    }
    assert_eq!(rounds, 3);
}

#[test]
fn past_the_limit_everything_is_pending_until_one_step_delivers_it() {
    let pending = Pending::new(10);
    let names: Vec<String> = (0..11).map(|i| format!("k{i}")).collect();
    pending.add(&Bust::of(&names, std::iter::empty::<&str>()));
    let claim = pending.claim().unwrap();
    let (work, generation) = pending.snapshot();
    assert!(matches!(work, Work::Everything));
    // A failure while the step is on its way needs another step.
    pending.add(&bust(&["late"]));
    let (after, claim) = pending.delivered(&work, generation, claim);
    assert_eq!(after, After::More);
    let (work, generation) = pending.snapshot();
    assert!(matches!(work, Work::Everything));
    let (after, _) = pending.delivered(&work, generation, claim.unwrap());
    assert_eq!(after, After::Done);
}

#[test]
fn a_later_bust_that_succeeds_covers_earlier_failures() {
    let pending = Pending::new(100);
    pending.add(&bust(&["a", "b"]));
    let generation = pending.generation();
    pending.covered(&bust(&["a"]), generation);
    assert_eq!(pending.len(), 1, "`b` is still pending");
    pending.covered(&bust(&["b"]), generation - 1);
    assert_eq!(
        pending.len(),
        1,
        "sent before `b` failed: does not cover it"
    );
}
