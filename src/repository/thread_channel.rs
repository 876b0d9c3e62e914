//! A tonic channel per calling thread. A tonic [`Channel`] runs its request buffer and its
//! HTTP/2 connection as tasks of the runtime that made it: one channel made at start-up ran them
//! on the main runtime, and every call from an HTTP worker (each has a single-threaded runtime of
//! its own) hopped to those tasks and back, about 5 cross-thread wake-ups (`eventfd` writes,
//! `futex` calls) per call, and half the HTTP app's instructions per `GET /grpc/hello` ran on
//! the main runtime (docs/benchmarks.md, issue 23). Here each thread that calls gets its own
//! channel, connected lazily on its first call and driven by that thread's runtime: the call,
//! the buffer and the connection run on one thread and no call wakes another.
//!
//! Each HTTP worker thus holds one connection per endpoint (the Go original shared one
//! `ClientConn` per process; a worker's connection multiplexes its calls as that one did).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use tonic::transport::{Channel, Endpoint};

/// Where the channels go and how they are made: each thread makes its own on first use.
#[derive(Debug)]
pub struct ThreadChannel {
    endpoint: Endpoint,
    /// Unique in the process: a thread's channel belongs to this one source only.
    id: u64,
    /// A thread's entry lives while this does (its `Weak` is how a thread learns it is gone).
    owner: Arc<()>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl ThreadChannel {
    /// Channels to `endpoint`; nothing connects until a thread calls [`ThreadChannel::get`].
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            owner: Arc::new(()),
        }
    }

    /// Where the channels go.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// This thread's channel (lazily connected; it reconnects by itself when its connection
    /// breaks), made now when this thread has none, or when the runtime that drove the one it
    /// had has shut down.
    ///
    /// # Panics
    /// Outside a tokio runtime (the channel's tasks need one).
    pub fn get(&self) -> Channel {
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            local.check_runtime();
            if let Some(entry) = local.channels.iter().find(|e| e.id == self.id) {
                return entry.channel.clone();
            }
            // A new entry: forget those whose source is gone (their connections close).
            local.channels.retain(|e| e.owner.strong_count() > 0);
            let channel = self.endpoint.connect_lazy();
            local.channels.push(Entry {
                id: self.id,
                owner: Arc::downgrade(&self.owner),
                channel: channel.clone(),
            });
            channel
        })
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = const {
        RefCell::new(Local {
            runtime_alive: None,
            channels: Vec::new(),
        })
    };
}

/// One thread's channels (a few: one per endpoint this thread called).
struct Local {
    /// Cleared when the runtime that drives `channels`' tasks shuts down (its sentinel task is
    /// dropped then): a thread may outlive its runtime (a test's, a restarted worker's).
    runtime_alive: Option<Arc<AtomicBool>>,
    channels: Vec<Entry>,
}

struct Entry {
    id: u64,
    owner: Weak<()>,
    channel: Channel,
}

impl Local {
    /// Drops the channels when their runtime is gone; makes a sentinel in the current runtime
    /// when there is none.
    fn check_runtime(&mut self) {
        if self
            .runtime_alive
            .as_ref()
            .is_some_and(|alive| alive.load(Ordering::Acquire))
        {
            return;
        }
        self.channels.clear();
        let alive = Arc::new(AtomicBool::new(true));
        let sentinel = Sentinel(alive.clone());
        tokio::spawn(async move {
            let _sentinel = sentinel;
            std::future::pending::<()>().await;
        });
        self.runtime_alive = Some(alive);
    }
}

/// Says, when dropped (its task is, when its runtime shuts down), that the runtime is gone.
struct Sentinel(Arc<AtomicBool>);

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> ThreadChannel {
        // Nothing listens there: no test here makes a call, so nothing connects.
        ThreadChannel::new(Endpoint::from_static("http://127.0.0.1:9"))
    }

    fn entries() -> Vec<u64> {
        LOCAL.with(|l| l.borrow().channels.iter().map(|e| e.id).collect())
    }

    #[test]
    fn a_thread_keeps_one_channel_per_source_until_its_runtime_or_source_goes() {
        let (a, b) = (source(), source());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            a.get();
            a.get();
            b.get();
            assert_eq!(entries(), [a.id, b.id]);
        });
        // Another thread has its own.
        std::thread::scope(|s| {
            s.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    assert!(entries().is_empty());
                    a.get();
                    assert_eq!(entries(), [a.id]);
                });
            });
        });
        assert_eq!(entries(), [a.id, b.id]);
        // A source dropped: its entry goes when this thread next makes one.
        let b_id = b.id;
        drop(b);
        let c = source();
        runtime.block_on(async {
            c.get();
        });
        assert_eq!(entries(), [a.id, c.id]);
        assert!(!entries().contains(&b_id));
        // The runtime shut down (its tasks, the channels' among them, are gone): the next call
        // on this thread, from another runtime, makes fresh ones there.
        drop(runtime);
        let next = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        next.block_on(async {
            a.get();
            assert_eq!(entries(), [a.id]);
        });
    }
}
