//! Nothing but the check in `tests/`.
