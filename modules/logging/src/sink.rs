//! The drain behind every logger: records are formatted on the calling thread straight into a
//! shared buffer, and a writer thread hands the buffer to the sinks in large chunks every
//! `flush_interval` (or sooner when it fills). A request pays for formatting and one uncontended
//! lock; the write system calls are amortised over many records. When the buffer is full,
//! records are dropped and the count is logged, so logging never blocks a request.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use slog::{Drain, OwnedKVList, Record};

use crate::Format;
use crate::format::{Clock, write_record};

struct Pending {
    buf: Vec<u8>,
    clock: Clock,
    stop: bool,
}

pub(crate) struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    dropped: AtomicU64,
    capacity: usize,
}

/// The slog drain.
pub(crate) struct BufferedDrain {
    shared: Arc<Shared>,
    format: Format,
    /// What every record of this drain ends with (`format::fixed_fields`).
    fixed: Vec<u8>,
}

impl BufferedDrain {
    /// A drain into the same buffer whose records end with `pairs`.
    pub(crate) fn with_fixed(&self, pairs: &[(&'static str, &str)]) -> BufferedDrain {
        BufferedDrain {
            shared: self.shared.clone(),
            format: self.format,
            fixed: crate::format::fixed_fields(self.format, pairs),
        }
    }
}

impl Drain for BufferedDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Pending { buf, clock, .. } = &mut *pending;
        let start = buf.len();
        write_record(buf, clock, self.format, record, values, &self.fixed);
        if buf.len() > self.shared.capacity {
            buf.truncate(start);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else if buf.len() > self.shared.capacity / 2 {
            self.shared.wake.notify_one();
        }
        Ok(())
    }
}

/// Owns the writer thread; dropping it writes what is buffered and stops the thread.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the writer thread over `sinks`; returns the drain and the thread's owner.
pub(crate) fn start(
    format: Format,
    capacity: usize,
    flush_interval: Duration,
    mut sinks: Vec<Box<dyn Write + Send>>,
) -> io::Result<(BufferedDrain, Writer)> {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending {
            buf: Vec::with_capacity(capacity / 4),
            clock: Clock::default(),
            stop: false,
        }),
        wake: Condvar::new(),
        dropped: AtomicU64::new(0),
        capacity,
    });
    let thread_shared = shared.clone();
    let thread = std::thread::Builder::new().name("log-writer".into()).spawn(move || {
        let shared = thread_shared;
        let mut out = Vec::with_capacity(capacity / 4);
        loop {
            let stop = {
                let pending = shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
                let (mut pending, _) = shared
                    .wake
                    .wait_timeout_while(pending, flush_interval, |p| !p.stop && p.buf.len() <= capacity / 2)
                    .unwrap_or_else(PoisonError::into_inner);
                std::mem::swap(&mut pending.buf, &mut out);
                pending.stop
            };
            let dropped = shared.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                let line = match format {
                    Format::Json => format!("{{\"level\":\"WARN\",\"msg\":\"log buffer full\",\"dropped\":{dropped}}}\n"),
                    Format::Text => format!("WARN log buffer full, dropped: {dropped}\n"),
                };
                out.extend_from_slice(line.as_bytes());
            }
            if !out.is_empty() {
                for sink in &mut sinks {
                    // A failing sink (disk full) must not stop the others or the application.
                    let _ = sink.write_all(&out).and_then(|()| sink.flush());
                }
                out.clear();
            }
            if stop {
                break;
            }
        }
    })?;
    Ok((
        BufferedDrain {
            shared: shared.clone(),
            format,
            fixed: Vec::new(),
        },
        Writer {
            shared,
            thread: Some(thread),
        },
    ))
}
