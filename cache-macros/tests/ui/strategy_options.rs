use cachette::cached;

#[cached(key = "a:<id>", ttl = 60, stale_ttl = 30)]
async fn stale_without_swr(id: u64) -> u64 {
    id
}

#[cached(key = "b:<id>", ttl = 60, strategy = "swr", beta = 2.0, lock_wait = "1s")]
async fn beta_and_wait_without_their_strategies(id: u64) -> u64 {
    id
}

#[cached(key = "c:<id>", ttl = 60, strategy = "early", beta = -1)]
async fn negative_beta(id: u64) -> u64 {
    id
}

#[cached(key = "d:<id>", ttl = 60, strategy = "lock", lock_ttl = "0ms", lock_wait = "soon")]
async fn bad_lock_durations(id: u64) -> u64 {
    id
}

#[cached(key = "e:<id>", ttl = "1500ms")]
async fn ttl_in_milliseconds(id: u64) -> u64 {
    id
}

#[cached(key = "f:<id>", ttl = 60, strategy = "aside", lock_ttl = "1s")]
async fn lock_ttl_with_aside(id: u64) -> u64 {
    id
}

fn main() {}
