//! No allocation per request: admissions, passes, failures and drops, below and over the
//! threshold, counted by a global allocator that counts this test thread's allocations only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use goex_shedding::{ManualClock, ManualCpu, Settings, Shedder};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only bumps a thread-local counter beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn deciding_and_recording_do_not_allocate() {
    let (cpu, clock) = (ManualCpu::new(0.5), ManualClock::new());
    let shedder = Shedder::with_sources(&Settings::default(), cpu.clone(), clock.clone()).unwrap();
    let mut held = Vec::with_capacity(64);
    let mut drops = 0;
    let count = allocations_during(|| {
        for round in 0..2_000u32 {
            clock.advance(Duration::from_millis(7));
            cpu.set(if round % 500 < 250 { 0.5 } else { 0.99 });
            match shedder.allow() {
                Ok(admitted) if held.len() < 60 => held.push(admitted),
                Ok(admitted) if round % 2 == 0 => admitted.pass(),
                Ok(admitted) => admitted.fail(),
                Err(_) => drops += 1,
            }
            if round % 3 == 0
                && let Some(admitted) = held.pop()
            {
                admitted.pass();
            }
            std::hint::black_box(shedder.snapshot());
        }
    });
    assert_eq!(count, 0, "allocations on the request path");
    assert!(drops > 0, "the overloaded path was exercised");
}
