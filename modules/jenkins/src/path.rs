//! Job paths (`a/b/c` → `/job/a/job/b/job/c`) and the queue id in a `Location` header.

use crate::JenkinsError;

/// The names of a job's full path, folders first: `a/b/c` and the original's (gojenkins')
/// `a/job/b/job/c` both give `["a", "b", "c"]`; leading, trailing and doubled slashes are
/// ignored.
///
/// Jenkins names cannot hold `/`, so the split is exact. The one ambiguity: a path whose every
/// second name is `job` is read in the original's form, so a folder literally named `job` must
/// be spelt that way too (`a/job/job/job/c` for folder `a`, folder `job`, job `c`).
///
/// # Errors
/// [`JenkinsError::InvalidName`] for an empty path or a `.` or `..` name.
pub fn split_job_path(full_name: &str) -> Result<Vec<&str>, JenkinsError> {
    // Jenkins trims item names: so do the paths, or a name created trimmed is looked up untrimmed.
    let mut names: Vec<&str> = full_name
        .split('/')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.len() >= 3 && names.len() % 2 == 1 {
        let in_originals_form = names.iter().skip(1).step_by(2).all(|n| *n == "job");
        if in_originals_form {
            names = names.into_iter().step_by(2).collect();
        }
    }
    if names.is_empty() || names.iter().any(|n| *n == "." || *n == "..") {
        return Err(JenkinsError::InvalidName(full_name.to_owned()));
    }
    Ok(names)
}

/// The URL path of a job or folder, `/job/a/job/b`, each name percent-encoded.
///
/// # Errors
/// As [`split_job_path`].
pub fn job_url_path(full_name: &str) -> Result<String, JenkinsError> {
    Ok(url_path_of(&split_job_path(full_name)?))
}

/// `/job/<n0>/job/<n1>...` for names already split.
pub(crate) fn url_path_of(names: &[&str]) -> String {
    let mut path = String::new();
    for name in names {
        path.push_str("/job/");
        path.push_str(&encode(name));
    }
    path
}

/// Percent-encodes one path segment: everything but RFC 3986's unreserved characters, so a name
/// with spaces, `#`, `?`, `%` or non-ASCII letters reaches Jenkins as typed.
pub(crate) fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The queue item id in the `Location` Jenkins answers a build request with
/// (`http://host/jenkins/queue/item/42/` → 42); `None` when it names no queue item (Jenkins
/// answers with `Location: .` when a `QueueDecisionHandler` refused the build).
pub fn queue_id_from_location(location: &str) -> Option<u64> {
    let location = location.split(['?', '#']).next().unwrap_or_default();
    let mut segments = location.trim_end_matches('/').rsplit('/');
    let id = segments.next()?.parse().ok()?;
    (segments.next()? == "item" && segments.next()? == "queue").then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_paths_become_job_urls() {
        assert_eq!(job_url_path("go-test").unwrap(), "/job/go-test");
        assert_eq!(job_url_path("a/b/c").unwrap(), "/job/a/job/b/job/c");
        assert_eq!(job_url_path("/a/b/").unwrap(), "/job/a/job/b");
        assert_eq!(job_url_path("a//b").unwrap(), "/job/a/job/b");
        assert_eq!(
            job_url_path("my folder/ci #1/déploi?x=1%").unwrap(),
            "/job/my%20folder/job/ci%20%231/job/d%C3%A9ploi%3Fx%3D1%25"
        );
    }

    #[test]
    fn the_originals_form_is_accepted() {
        assert_eq!(
            split_job_path("xudttest/job/folder1_test/job/job_test").unwrap(),
            ["xudttest", "folder1_test", "job_test"]
        );
        assert_eq!(
            job_url_path("xudttest/job/folder1_test/job/job_test").unwrap(),
            "/job/xudttest/job/folder1_test/job/job_test"
        );
        assert_eq!(split_job_path("job/a").unwrap(), ["job", "a"]);
        // Not the original's form: kept as written.
        assert_eq!(split_job_path("a/job").unwrap(), ["a", "job"]);
        assert_eq!(split_job_path("a/jobs/b").unwrap(), ["a", "jobs", "b"]);
        assert_eq!(split_job_path("job").unwrap(), ["job"]);
        // A folder named `job`, spelt in the original's form.
        assert_eq!(
            split_job_path("a/job/job/job/c").unwrap(),
            ["a", "job", "c"]
        );
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "/", "//", "a/../b", ".", "a/."] {
            assert!(
                matches!(split_job_path(bad), Err(JenkinsError::InvalidName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn queue_ids_come_from_the_location() {
        assert_eq!(
            queue_id_from_location("http://127.0.0.1:8080/queue/item/42/"),
            Some(42)
        );
        assert_eq!(
            queue_id_from_location("https://ci.example.com/jenkins/queue/item/7"),
            Some(7)
        );
        assert_eq!(queue_id_from_location("/queue/item/9/?x=1"), Some(9));
        assert_eq!(queue_id_from_location("."), None);
        assert_eq!(queue_id_from_location("http://h/job/x/"), None);
        assert_eq!(queue_id_from_location("http://h/queue/item/x/"), None);
        assert_eq!(queue_id_from_location("http://h/other/item/3/"), None);
        assert_eq!(queue_id_from_location(""), None);
    }
}
