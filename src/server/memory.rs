//! Gives back the memory that only start-up used, once a server listens
//! (`server.release_startup_memory`, on by default).
//!
//! Start-up touches code and read-only data that serving never runs again (configuration
//! loading, migrations, the dependency graph, the OpenAPI document, the command line), and the
//! kernel maps the binary's pages in large chunks around each of them: of a 30 MiB idle process,
//! 16 MiB were the binary's code. Two steps, both of which only drop what can come back:
//!
//! - `malloc_trim(0)` returns the allocator's free pages (every arena) to the system;
//! - `madvise(MADV_DONTNEED)` on the binary's own **read-only, never written** mappings drops
//!   their pages from the process. They stay in the page cache: code that runs again is mapped
//!   back by a minor fault. A mapping holding any page the process wrote (the relocated
//!   read-only data, made read-only after the loader patched it) is left alone, since dropping
//!   it would bring back the unrelocated file contents.
//!
//! Linux and glibc only; elsewhere nothing is done.

/// What [`release_startup_memory`] gave back, for the start-up log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Resident kilobytes before.
    pub before_kib: u64,
    /// Resident kilobytes after.
    pub after_kib: u64,
}

/// Releases start-up memory (see the module docs). Errors reading `/proc` leave things as they
/// are: this is an optimisation, never a reason to stop.
pub fn release_startup_memory() -> Released {
    let before_kib = resident_kib();
    imp::release();
    Released {
        before_kib,
        after_kib: resident_kib(),
    }
}

/// Releases start-up memory when `server.release_startup_memory` is on, and logs what it gave
/// back. The commands call it once their server is built, before serving.
pub fn after_start(config: &crate::meta::config::AppConfig, logger: &slog::Logger) {
    if !config.server.release_startup_memory {
        return;
    }
    let released = release_startup_memory();
    slog::info!(logger, "start-up memory released";
        "rss_before_kib" => released.before_kib, "rss_after_kib" => released.after_kib);
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One mapping of `/proc/self/smaps`.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    writable: bool,
    private: bool,
    path: String,
    /// Resident kilobytes.
    rss_kib: u64,
    /// Pages of the mapping that are the process's own: copied on write (the relocated data).
    /// `Private_Dirty` is no guide: it also counts page-cache pages not yet written back, as
    /// a binary just linked has.
    anonymous_kib: u64,
}

impl Mapping {
    /// Whether its pages can be dropped and faulted back unchanged: a private mapping of
    /// `exe` that the process cannot write and never wrote.
    fn droppable(&self, exe: &str) -> bool {
        self.path == exe && self.private && !self.writable && self.anonymous_kib == 0
    }
}

/// Parses `/proc/self/smaps` text.
fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            let perms = fields.next().unwrap_or("");
            // offset, device, inode, then the path (which may hold spaces).
            let path = fields.skip(3).collect::<Vec<_>>().join(" ");
            out.push(Mapping {
                start,
                end,
                writable: perms.as_bytes().get(1) == Some(&b'w'),
                private: perms.as_bytes().get(3) == Some(&b'p'),
                path,
                rss_kib: 0,
                // Unknown until read: counted as written, so a mapping whose lines are missing
                // is never dropped.
                anonymous_kib: u64::MAX,
            });
            continue;
        }
        let Some(current) = out.last_mut() else {
            continue;
        };
        let mut kib = || fields.next().and_then(|v| v.parse::<u64>().ok());
        match first {
            "Rss:" => current.rss_kib = kib().unwrap_or(0),
            "Anonymous:" => current.anonymous_kib = kib().unwrap_or(u64::MAX),
            _ => {}
        }
    }
    out
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use super::parse_smaps;

    pub(super) fn release() {
        // SAFETY: malloc_trim only returns free memory of glibc's own arenas to the system.
        unsafe {
            libc::malloc_trim(0);
        }
        let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
            return;
        };
        let Some(exe) = exe.to_str() else { return };
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return;
        };
        for m in parse_smaps(&smaps).iter().filter(|m| m.droppable(exe)) {
            // SAFETY: the range is a whole private, read-only mapping of the executable whose
            // pages all are the file's (no anonymous page, checked above, and the
            // process cannot write it): dropping them makes the next access read the same bytes
            // from the page cache again.
            unsafe {
                libc::madvise(
                    m.start as *mut libc::c_void,
                    m.end - m.start,
                    libc::MADV_DONTNEED,
                );
            }
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub(super) fn release() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c1000000 r--p 00000000 fe:01 123 /opt/app/go example
Rss:                1024 kB
Anonymous:             0 kB
Private_Dirty:         0 kB
55d0c1000000-55d0c2000000 r-xp 01000000 fe:01 123 /opt/app/go example
Anonymous:             0 kB
Private_Dirty:       512 kB
55d0c2000000-55d0c2100000 r--p 02000000 fe:01 123 /opt/app/go example
Anonymous:           512 kB
Private_Dirty:       512 kB
55d0c2100000-55d0c2200000 rw-p 02100000 fe:01 123 /opt/app/go example
Anonymous:            64 kB
Private_Dirty:        64 kB
55d0c2200000-55d0c2300000 r--p 00000000 fe:01 124 /usr/lib/libc.so.6
Anonymous:             0 kB
Private_Dirty:         0 kB
55d0c2300000-55d0c2400000 r-xp 00000000 fe:01 125 /opt/app/go example
Rss:                  12 kB
7ffd00000000-7ffd00100000 rw-p 00000000 00:00 0 [stack]
Anonymous:            64 kB
";

    #[test]
    fn only_never_written_read_only_mappings_of_the_binary_are_dropped() {
        let maps = parse_smaps(SMAPS);
        assert_eq!(maps.len(), 7);
        assert_eq!(maps[0].path, "/opt/app/go example", "paths with spaces");
        let dropped: Vec<usize> = maps
            .iter()
            .filter(|m| m.droppable("/opt/app/go example"))
            .map(|m| m.start)
            .collect();
        assert_eq!(
            dropped,
            [0x55d0_c000_0000, 0x55d0_c100_0000],
            "code and untouched read-only data; not the relocated data, the writable data, \
             another file, a mapping without its counters, or the stack"
        );
    }

    #[test]
    fn the_binarys_clean_pages_leave_and_the_process_keeps_working() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let exe = exe.to_str().unwrap().to_owned();
        let droppable_rss = || {
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
            parse_smaps(&smaps)
                .iter()
                .filter(|m| m.droppable(&exe))
                .map(|m| m.rss_kib)
                .sum::<u64>()
        };
        let squares: Vec<u64> = (0..1000u64).map(|i| i * i).collect();
        let before = droppable_rss();
        assert!(before > 0, "the test binary's code is resident");
        let released = release_startup_memory();
        let after = droppable_rss();
        assert!(after < before, "{before} -> {after} KiB");
        assert!(released.before_kib > 0, "{released:?}");
        // Code, read-only data and the heap still read back what they held.
        assert_eq!(squares, (0..1000u64).map(|i| i * i).collect::<Vec<_>>());
        assert_eq!(format!("{:?}", Some("x")), "Some(\"x\")");
    }
}
