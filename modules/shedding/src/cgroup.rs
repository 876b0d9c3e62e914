//! How many CPUs this process may use: its affinity mask, capped by the CPU quota of its cgroup
//! (v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`, v2 `cpu.max`), the cgroup found through
//! `/proc/self/cgroup` and `/proc/self/mountinfo`. The parsers are pure functions of the files'
//! text; [`CpuLimit::discover`] does the reading.

use std::fs;
use std::path::{Path, PathBuf};

/// Which cgroup hierarchy holds the CPU controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    /// A `cgroup` mount with the `cpu` controller (`cpu.cfs_quota_us`, `cpu.cfs_period_us`).
    V1,
    /// The unified `cgroup2` mount (`cpu.max`).
    V2,
}

/// The CPUs this process may run on, as [`CpuLimit::discover`] found them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuLimit {
    /// CPUs in the affinity mask (`sched_getaffinity`); at least 1.
    pub affinity: usize,
    /// The tightest cgroup quota on the way from this process's cgroup to the hierarchy's root,
    /// in CPUs (`1.5` is 150 ms of CPU time per 100 ms); `None` when unlimited or not found.
    pub quota: Option<f64>,
    /// Which hierarchy the quota was read from, when a CPU cgroup was found.
    pub cgroup: Option<CgroupVersion>,
}

impl CpuLimit {
    /// The CPUs this process can use at most: the affinity count, or the quota when lower.
    pub fn cpus(&self) -> f64 {
        let affinity = self.affinity.max(1) as f64;
        match self.quota {
            Some(quota) if quota > 0.0 => quota.min(affinity),
            _ => affinity,
        }
    }

    /// Reads this process's affinity mask and CPU cgroup quota. Whatever cannot be read counts
    /// as no limit (an affinity of [`std::thread::available_parallelism`], no quota), so a
    /// process outside Linux's usual mounts still gets a reading, against the whole machine.
    pub fn discover() -> CpuLimit {
        let affinity = affinity_count().unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let found = cgroup_dir(
            Path::new("/proc/self/cgroup"),
            Path::new("/proc/self/mountinfo"),
        );
        let (quota, cgroup) = match found {
            Some((version, dir, mount)) => (quota_along(version, &dir, &mount), Some(version)),
            None => (None, None),
        };
        CpuLimit {
            affinity,
            quota,
            cgroup,
        }
    }
}

/// CPUs in this process's affinity mask.
fn affinity_count() -> Option<usize> {
    use nix::sched::{CpuSet, sched_getaffinity};
    let set = sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    let count = (0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .count();
    (count > 0).then_some(count)
}

/// This process's CPU cgroup directory and the mount point of its hierarchy.
fn cgroup_dir(proc_cgroup: &Path, mountinfo: &Path) -> Option<(CgroupVersion, PathBuf, PathBuf)> {
    let cgroups = fs::read_to_string(proc_cgroup).ok()?;
    let mounts = fs::read_to_string(mountinfo).ok()?;
    // v1 first: on a hybrid host the `0::` line exists but holds no CPU controller.
    for version in [CgroupVersion::V1, CgroupVersion::V2] {
        let Some(path) = cpu_cgroup_path(&cgroups, version) else {
            continue;
        };
        let Some((root, mount)) = cgroup_mount(&mounts, version) else {
            continue;
        };
        return Some((
            version,
            join_cgroup(&mount, &root, &path),
            PathBuf::from(mount),
        ));
    }
    None
}

/// The tightest quota from `dir` up to `mount`, each level read as its version says.
fn quota_along(version: CgroupVersion, dir: &Path, mount: &Path) -> Option<f64> {
    let mut tightest: Option<f64> = None;
    let mut at = Some(dir);
    while let Some(level) = at {
        let quota = match version {
            CgroupVersion::V1 => {
                let quota = fs::read_to_string(level.join("cpu.cfs_quota_us"));
                let period = fs::read_to_string(level.join("cpu.cfs_period_us"));
                match (quota, period) {
                    (Ok(q), Ok(p)) => parse_cfs_quota(&q, &p),
                    _ => None,
                }
            }
            CgroupVersion::V2 => fs::read_to_string(level.join("cpu.max"))
                .ok()
                .and_then(|text| parse_cpu_max(&text)),
        };
        if let Some(quota) = quota {
            tightest = Some(tightest.map_or(quota, |t: f64| t.min(quota)));
        }
        if level == mount {
            break;
        }
        at = level.parent().filter(|parent| parent.starts_with(mount));
    }
    tightest
}

/// The cgroup path of the CPU controller in `/proc/self/cgroup`: for v1 the line whose
/// controller list holds `cpu` (`4:cpu,cpuacct:/docker/abc`), for v2 the `0::/path` line.
pub(crate) fn cpu_cgroup_path(proc_cgroup: &str, version: CgroupVersion) -> Option<String> {
    proc_cgroup.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let id = fields.next()?;
        let controllers = fields.next()?;
        let path = fields.next()?;
        let wanted = match version {
            CgroupVersion::V1 => controllers.split(',').any(|c| c == "cpu"),
            CgroupVersion::V2 => id == "0" && controllers.is_empty(),
        };
        wanted.then(|| path.to_owned())
    })
}

/// The root and mount point of the CPU hierarchy in `/proc/self/mountinfo`: a `cgroup` mount
/// whose super options hold `cpu` (v1) or the `cgroup2` mount (v2).
///
/// A line reads `id parent major:minor root mount_point options [optional...] - fstype source
/// super_options`.
pub(crate) fn cgroup_mount(mountinfo: &str, version: CgroupVersion) -> Option<(String, String)> {
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split(' ').collect();
        let (root, mount) = (fields.get(3)?, fields.get(4)?);
        let mut after = after.split(' ');
        let fstype = after.next()?;
        let super_options = after.nth(1).unwrap_or("");
        let wanted = match version {
            CgroupVersion::V1 => fstype == "cgroup" && super_options.split(',').any(|o| o == "cpu"),
            CgroupVersion::V2 => fstype == "cgroup2",
        };
        wanted.then(|| (root.to_string(), mount.to_string()))
    })
}

/// The directory of cgroup `path` under a hierarchy mounted at `mount` from `root`. A path
/// outside the mount's root (a container that sees its host's path) is the mount itself.
pub(crate) fn join_cgroup(mount: &str, root: &str, path: &str) -> PathBuf {
    let relative = if root == "/" {
        Some(path)
    } else {
        path.strip_prefix(root)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    let mut dir = PathBuf::from(mount);
    if let Some(relative) = relative {
        dir.extend(
            relative
                .split('/')
                .filter(|part| !part.is_empty() && *part != ".."),
        );
    }
    dir
}

/// CPUs granted by cgroup v1's `cpu.cfs_quota_us` and `cpu.cfs_period_us`; `None` when the
/// quota is `-1` (unlimited) or either file does not hold a positive number.
pub(crate) fn parse_cfs_quota(quota_us: &str, period_us: &str) -> Option<f64> {
    let quota: i64 = quota_us.trim().parse().ok()?;
    let period: i64 = period_us.trim().parse().ok()?;
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

/// CPUs granted by cgroup v2's `cpu.max` (`$MAX $PERIOD`, `max` when unlimited; the period may
/// be left out, 100000 µs); `None` when unlimited or unreadable.
pub(crate) fn parse_cpu_max(cpu_max: &str) -> Option<f64> {
    let mut fields = cpu_max.split_whitespace();
    let quota: i64 = fields.next()?.parse().ok()?; // `max` fails here: unlimited
    let period: i64 = match fields.next() {
        Some(period) => period.parse().ok()?,
        None => 100_000,
    };
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_CGROUP: &str = "\
12:pids:/docker/4f2a
11:cpuset:/docker/4f2a
4:cpu,cpuacct:/docker/4f2a
1:name=systemd:/docker/4f2a
0::/system.slice/docker.service
";
    const V1_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
33 31 0:30 / /sys/fs/cgroup/cpuset rw,nosuid shared:13 - cgroup cgroup rw,cpuset
35 31 0:32 /docker/4f2a /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct
";
    const V2_CGROUP: &str = "0::/kubepods.slice/pod1/cri-abc\n";
    const V2_MOUNTINFO: &str = "\
22 1 0:21 / /proc rw - proc proc rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec shared:4 - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn v1_finds_the_cpu_controller_line_and_its_mount() {
        let path = cpu_cgroup_path(V1_CGROUP, CgroupVersion::V1).unwrap();
        assert_eq!(path, "/docker/4f2a");
        // cpuset and cpuacct alone are not `cpu`.
        assert_eq!(
            cpu_cgroup_path("3:cpuset:/a\n2:cpuacct:/b\n", CgroupVersion::V1),
            None
        );
        let (root, mount) = cgroup_mount(V1_MOUNTINFO, CgroupVersion::V1).unwrap();
        assert_eq!(
            (root.as_str(), mount.as_str()),
            ("/docker/4f2a", "/sys/fs/cgroup/cpu,cpuacct")
        );
        // Inside the container the mount's root is the container's cgroup: no subfolder.
        assert_eq!(
            join_cgroup(&mount, &root, &path),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
    }

    #[test]
    fn v2_finds_the_unified_line_and_the_cgroup2_mount() {
        assert_eq!(cpu_cgroup_path(V2_CGROUP, CgroupVersion::V1), None);
        let path = cpu_cgroup_path(V2_CGROUP, CgroupVersion::V2).unwrap();
        let (root, mount) = cgroup_mount(V2_MOUNTINFO, CgroupVersion::V2).unwrap();
        assert_eq!(cgroup_mount(V2_MOUNTINFO, CgroupVersion::V1), None);
        assert_eq!(
            join_cgroup(&mount, &root, &path),
            PathBuf::from("/sys/fs/cgroup/kubepods.slice/pod1/cri-abc")
        );
    }

    #[test]
    fn a_path_outside_the_mount_root_is_the_mount_itself() {
        assert_eq!(
            join_cgroup("/sys/fs/cgroup/cpu", "/docker/a", "/docker/ab/x"),
            PathBuf::from("/sys/fs/cgroup/cpu")
        );
        assert_eq!(
            join_cgroup("/sys/fs/cgroup", "/", "/../../x"),
            PathBuf::from("/sys/fs/cgroup/x")
        );
        assert_eq!(
            join_cgroup("/sys/fs/cgroup/cpu", "/docker/a", "/docker/a/child"),
            PathBuf::from("/sys/fs/cgroup/cpu/child")
        );
    }

    #[test]
    fn v1_quota_is_quota_over_period_and_minus_one_is_unlimited() {
        assert_eq!(parse_cfs_quota("150000\n", "100000\n"), Some(1.5));
        assert_eq!(parse_cfs_quota("50000", "100000"), Some(0.5));
        assert_eq!(parse_cfs_quota("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs_quota("100000", "0"), None);
        assert_eq!(parse_cfs_quota("", "100000"), None);
    }

    #[test]
    fn v2_cpu_max_is_quota_over_period_and_max_is_unlimited() {
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2.0));
        assert_eq!(parse_cpu_max("25000 50000"), Some(0.5));
        assert_eq!(parse_cpu_max("50000"), Some(0.5));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max(""), None);
    }

    #[test]
    fn the_quota_caps_the_affinity_and_never_raises_it() {
        let limit = |affinity, quota| CpuLimit {
            affinity,
            quota,
            cgroup: None,
        };
        assert_eq!(limit(2, None).cpus(), 2.0);
        assert_eq!(limit(2, Some(0.5)).cpus(), 0.5);
        assert_eq!(limit(1, Some(4.0)).cpus(), 1.0);
        assert_eq!(limit(0, None).cpus(), 1.0);
    }

    #[test]
    fn the_tightest_quota_on_the_way_up_wins() {
        let dir = std::env::temp_dir().join(format!("goex-shedding-{}", std::process::id()));
        let leaf = dir.join("parent/leaf");
        fs::create_dir_all(&leaf).unwrap();
        fs::write(dir.join("cpu.max"), "max 100000\n").unwrap();
        fs::write(dir.join("parent/cpu.max"), "50000 100000\n").unwrap();
        fs::write(leaf.join("cpu.max"), "150000 100000\n").unwrap();
        assert_eq!(quota_along(CgroupVersion::V2, &leaf, &dir), Some(0.5));
        fs::write(dir.join("parent/cpu.cfs_quota_us"), "-1\n").unwrap();
        fs::write(dir.join("parent/cpu.cfs_period_us"), "100000\n").unwrap();
        fs::write(leaf.join("cpu.cfs_quota_us"), "120000\n").unwrap();
        fs::write(leaf.join("cpu.cfs_period_us"), "100000\n").unwrap();
        assert_eq!(quota_along(CgroupVersion::V1, &leaf, &dir), Some(1.2));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn discover_reads_this_machine() {
        let limit = CpuLimit::discover();
        assert!(limit.affinity >= 1);
        assert!(limit.cpus() > 0.0 && limit.cpus() <= limit.affinity as f64);
    }
}
