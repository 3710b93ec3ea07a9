//! Nothing here: the probe is `tests/freed.rs`.
