//! The one rule for the modes of private key files (JWT signing keys, TLS keys), shared by every
//! loader so they cannot drift apart.
//!
//! A private key is accepted when
//! - neither its group nor others may read, write or run it (`mode & 0o077 == 0`: 0600, 0400), or
//! - it is **owned by root**, its group may only read it (`mode & 0o037 == 0`: 0640, 0440) and
//!   that group is one of this process's (its effective group or a supplementary one).
//!
//! The second case is how Kubernetes mounts a Secret for a non-root pod with `fsGroup`: the files
//! are `root:<fsGroup>` with mode 0440, and the container's user holds `fsGroup` as a
//! supplementary group. Only root can have made such a file, and only members of the group can
//! read it; PostgreSQL accepts its server key on the same terms. A group-readable file owned by
//! anyone else, group write, or any bit for others stays refused.
//!
//! The mode is read from the opened file (or `std::fs::metadata`, which follows links), so a
//! symlink, as Kubernetes mounts its `..data` entries, is judged by its target.

use std::fs::Metadata;

/// A private key file's permission bits and owner, when refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// `mode & 0o777`.
    pub mode: u32,
}

/// The hint the loaders print with a refusal.
pub const HINT: &str = "restrict it with `chmod 600` (or, for a secret mounted group-readable, as Kubernetes does with fsGroup: owned by root, mode 0440, group one of the app's)";

/// Judges a private key file by its metadata (see the crate's rule).
///
/// # Errors
/// [`Refused`] with the permission bits when the rule refuses it.
#[cfg(unix)]
pub fn check_private(meta: &Metadata) -> Result<(), Refused> {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    if mode & 0o037 == 0 && meta.uid() == 0 && in_process_groups(meta.gid()) {
        return Ok(());
    }
    Err(Refused { mode })
}

/// Off Unix, permission bits do not exist: nothing is refused.
///
/// # Errors
/// Never.
#[cfg(not(unix))]
pub fn check_private(_meta: &Metadata) -> Result<(), Refused> {
    Ok(())
}

/// Whether `gid` is this process's effective group or one of its supplementary groups.
#[cfg(unix)]
fn in_process_groups(gid: u32) -> bool {
    use nix::unistd::{Gid, getegid, getgroups};
    let gid = Gid::from_raw(gid);
    getegid() == gid || getgroups().is_ok_and(|groups| groups.contains(&gid))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, chown};
    use std::path::Path;

    fn set(path: &Path, mode: u32) -> Metadata {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        std::fs::metadata(path).unwrap()
    }

    /// A group this process is not in.
    fn foreign_gid() -> u32 {
        (40_000..60_000)
            .find(|gid| !in_process_groups(*gid))
            .expect("a group the process is not in")
    }

    #[test]
    fn owner_only_modes_are_accepted_whoever_owns_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "key").unwrap();
        for mode in [0o600, 0o400, 0o700] {
            assert_eq!(check_private(&set(&key, mode)), Ok(()), "{mode:o}");
        }
    }

    #[test]
    fn others_bits_and_group_write_are_refused_whoever_owns_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "key").unwrap();
        for mode in [0o644, 0o604, 0o660, 0o602, 0o620, 0o650, 0o444, 0o470] {
            assert_eq!(
                check_private(&set(&key, mode)),
                Err(Refused { mode }),
                "{mode:o}"
            );
        }
    }

    /// Run as root (as `make test` is): a root-owned key readable by a group of the process is
    /// accepted, by another group refused. Run as another user, the file is that user's and
    /// group-read is refused.
    #[test]
    fn group_read_is_accepted_only_for_a_root_owned_file_of_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "key").unwrap();
        let root = nix::unistd::geteuid().is_root();
        for mode in [0o640, 0o440] {
            let verdict = check_private(&set(&key, mode));
            if root {
                assert_eq!(verdict, Ok(()), "root:own group {mode:o}");
            } else {
                assert_eq!(verdict, Err(Refused { mode }), "user-owned {mode:o}");
            }
        }
        if root {
            chown(&key, None, Some(foreign_gid())).unwrap();
            for mode in [0o640, 0o440] {
                assert_eq!(
                    check_private(&set(&key, mode)),
                    Err(Refused { mode }),
                    "root:foreign group {mode:o}"
                );
            }
            // Owned by someone else than root, in the process's group: refused.
            chown(
                &key,
                Some(foreign_gid()),
                Some(nix::unistd::getegid().as_raw()),
            )
            .unwrap();
            assert_eq!(
                check_private(&set(&key, 0o440)),
                Err(Refused { mode: 0o440 })
            );
        }
    }
}
