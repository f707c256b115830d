//! Bench work on a thread of its own, with a single-threaded runtime: load generators, stream
//! clients and webhook receivers never share the threads of the runtime that drives the bench.

use std::future::Future;

use tokio::sync::oneshot;

/// Runs the future `make` returns on a new thread with a runtime of its own. Its output comes
/// back through the receiver (closed if the thread panicked).
pub fn on_own_thread<F, T>(make: impl FnOnce() -> F + Send + 'static) -> oneshot::Receiver<T>
where
    F: Future<Output = T>,
    T: Send + 'static,
{
    let (done, output) = oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a bench thread's runtime");
        let _ = done.send(runtime.block_on(make()));
    });
    output
}
