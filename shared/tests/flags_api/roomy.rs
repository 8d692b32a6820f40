//! Debug builds of the handlers stack deep: one PATCH through `feature_flags::handle` takes
//! about 1.8 MB of stack unoptimised, close to the 2 MB of libtest's threads, so a test whose
//! own frame is large overflows. [`roomy`] runs a test on a thread with room instead.

use std::future::Future;

/// Stack of the thread a [`roomy`] test runs on.
const STACK_BYTES: usize = 16 * 1024 * 1024;

/// Runs the future `test` makes on its own thread (16 MB of stack) and current-thread runtime;
/// a panic in it fails the calling test.
pub fn roomy<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread = std::thread::Builder::new()
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a test runtime");
            runtime.block_on(test());
        })
        .expect("a test thread");
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}
