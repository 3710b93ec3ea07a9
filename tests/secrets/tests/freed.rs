//! Secrets are wiped before their memory is freed: an allocator that looks
//! into every block freed counts the blocks that still held a secret.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

/// The secret, in the program's static data (never freed itself).
const TOKEN: &str = "AXk3probe-upstash-token-5b2c9e1f77d04a6e";

struct Watching;

static WATCH: AtomicBool = AtomicBool::new(false);
static FOUND: AtomicUsize = AtomicUsize::new(0);
static WIPED: AtomicUsize = AtomicUsize::new(0);

/// The length of the header that carries the token.
const BEARER_LEN: usize = "Bearer ".len() + TOKEN.len();

unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCH.load(SeqCst) && layout.size() >= TOKEN.len() {
            // The block is still ours until it is handed back below.
            let block = std::slice::from_raw_parts(ptr, layout.size());
            if block.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()) {
                FOUND.fetch_add(1, SeqCst);
            }
            if layout.size() == BEARER_LEN && block.iter().all(|b| *b == 0) {
                WIPED.fetch_add(1, SeqCst);
            }
        }
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// A cache on Upstash's protocol (lazily, at a loopback port where nothing
/// listens), built and dropped: no block freed meanwhile holds the token,
/// and the header that held it was freed, wiped.
#[tokio::test(flavor = "current_thread")]
async fn the_upstash_token_is_wiped_before_it_is_freed() {
    WATCH.store(true, SeqCst);
    let cache = cachette::Cache::builder()
        .connect_upstash_lazy("http://127.0.0.1:9", TOKEN)
        .expect("a lazy cache");
    drop(cache);
    WATCH.store(false, SeqCst);
    assert_eq!(FOUND.load(SeqCst), 0, "freed blocks that held the token");
    assert!(WIPED.load(SeqCst) >= 1, "the token's header was not freed");
}
