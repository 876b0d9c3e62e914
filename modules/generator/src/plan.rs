//! What a generation writes: files created (never replaced), lines inserted above marker
//! comments (idempotent), and files rewritten whole from their own content (`schema.rs`, the
//! Postman collection). [`Plan::check`] runs every check before [`Plan::apply`] writes anything.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::GenerateError;

/// A file to create.
#[derive(Clone, Debug)]
pub struct Create {
    /// Relative to the project's root.
    pub path: PathBuf,
    /// Its content.
    pub content: String,
}

/// Lines to insert directly above the line holding `marker` (a comment such as
/// `// generate:mod`), each once: a line the file holds already is not inserted again.
#[derive(Clone, Debug)]
pub struct Insert {
    /// Relative to the project's root.
    pub path: PathBuf,
    /// The marker's text (`generate:mod`), found inside a comment line.
    pub marker: String,
    /// The lines, without indentation: the marker's own is added.
    pub lines: Vec<String>,
}

/// A file rewritten whole: `before` is what the plan was computed from, so a file changed
/// meanwhile is refused rather than clobbered.
#[derive(Clone, Debug)]
pub struct Rewrite {
    /// Relative to the project's root.
    pub path: PathBuf,
    /// The content it was computed from.
    pub before: String,
    /// The new content.
    pub after: String,
    /// What changes, for the dry run.
    pub summary: String,
}

/// Everything one generation writes.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Files created.
    pub creates: Vec<Create>,
    /// Lines inserted at markers.
    pub inserts: Vec<Insert>,
    /// Files rewritten whole.
    pub rewrites: Vec<Rewrite>,
}

/// The marker line of `marker` in `text`: its index and indentation.
fn find_marker<'t>(text: &'t str, marker: &str) -> Option<(usize, &'t str)> {
    text.lines().enumerate().find_map(|(i, line)| {
        let trimmed = line.trim_start();
        let comment = trimmed.starts_with("//")
            || trimmed.starts_with("%%")
            || trimmed.starts_with("<!--")
            || trimmed.starts_with('#');
        (comment && trimmed.contains(marker)).then(|| (i, &line[..line.len() - trimmed.len()]))
    })
}

impl Plan {
    /// Checks that every file to create is absent, every marker present and every rewritten file
    /// unchanged.
    ///
    /// # Errors
    /// The first file that stands in the way, named.
    pub fn check(&self, root: &Path) -> Result<(), GenerateError> {
        let mut clashes = Vec::new();
        for create in &self.creates {
            if root.join(&create.path).exists() {
                clashes.push(create.path.display().to_string());
            }
        }
        if !clashes.is_empty() {
            return Err(GenerateError::Clash(format!(
                "refusing to overwrite: {} exist(s) already (nothing was written; remove them or choose another name)",
                clashes.join(", ")
            )));
        }
        for insert in &self.inserts {
            let text = crate::read(root, &insert.path.to_string_lossy())?;
            if find_marker(&text, &insert.marker).is_none() {
                return Err(GenerateError::project(
                    &insert.path,
                    format!(
                        "the marker comment `{}` is missing: put it back where generated lines belong (docs/generator.md)",
                        insert.marker
                    ),
                ));
            }
        }
        for rewrite in &self.rewrites {
            let now = crate::read(root, &rewrite.path.to_string_lossy())?;
            if now != rewrite.before {
                return Err(GenerateError::project(
                    &rewrite.path,
                    "changed while the plan was made; run the command again",
                ));
            }
        }
        Ok(())
    }

    /// Writes the plan (after [`Plan::check`]); returns the files it changed, created ones first.
    ///
    /// # Errors
    /// A check fails, or a write does.
    pub fn apply(&self, root: &Path) -> Result<Vec<PathBuf>, GenerateError> {
        self.check(root)?;
        let mut touched = Vec::new();
        for create in &self.creates {
            let full = root.join(&create.path);
            if let Some(dir) = full.parent() {
                std::fs::create_dir_all(dir).map_err(|e| GenerateError::io(dir, e))?;
            }
            // `create_new`: a file that appeared since the check is still not replaced.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&full)
                .map_err(|e| GenerateError::io(&create.path, e))?;
            std::io::Write::write_all(&mut file, create.content.as_bytes())
                .map_err(|e| GenerateError::io(&create.path, e))?;
            touched.push(create.path.clone());
        }
        for insert in &self.inserts {
            let text = crate::read(root, &insert.path.to_string_lossy())?;
            let updated = insert_lines(&text, insert);
            if updated != text {
                std::fs::write(root.join(&insert.path), updated)
                    .map_err(|e| GenerateError::io(&insert.path, e))?;
                touched.push(insert.path.clone());
            }
        }
        for rewrite in &self.rewrites {
            std::fs::write(root.join(&rewrite.path), &rewrite.after)
                .map_err(|e| GenerateError::io(&rewrite.path, e))?;
            touched.push(rewrite.path.clone());
        }
        Ok(touched)
    }

    /// The plan as the dry run prints it.
    pub fn describe(&self, root: &Path) -> String {
        let mut out = String::new();
        for create in &self.creates {
            let _ = writeln!(
                out,
                "create  {} ({} lines)",
                create.path.display(),
                create.content.lines().count()
            );
        }
        for insert in &self.inserts {
            let pending: Vec<&String> = match crate::read(root, &insert.path.to_string_lossy()) {
                Ok(text) => insert
                    .lines
                    .iter()
                    .filter(|l| !holds_line(&text, l))
                    .collect(),
                Err(_) => insert.lines.iter().collect(),
            };
            for line in pending {
                let _ = writeln!(
                    out,
                    "insert  {} at `{}`: {}",
                    insert.path.display(),
                    insert.marker,
                    line
                );
            }
        }
        for rewrite in &self.rewrites {
            let _ = writeln!(
                out,
                "rewrite {}: {}",
                rewrite.path.display(),
                rewrite.summary
            );
        }
        out
    }
}

/// Whether `text` holds every line of `entry` already (ignoring indentation).
fn holds_line(text: &str, entry: &str) -> bool {
    entry
        .lines()
        .all(|part| text.lines().any(|l| l.trim() == part.trim()))
}

/// `text` with the insert's missing lines above its marker.
pub(crate) fn insert_lines(text: &str, insert: &Insert) -> String {
    let Some((index, indent)) = find_marker(text, &insert.marker) else {
        return text.to_owned();
    };
    let missing: Vec<String> = insert
        .lines
        .iter()
        .filter(|l| !holds_line(text, l))
        .map(|l| {
            l.lines()
                .map(|part| format!("{indent}{part}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    if missing.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 256);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if i == index {
            for added in &missing {
                out.push_str(added);
                out.push('\n');
            }
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(lines: &[&str]) -> Insert {
        Insert {
            path: "x.rs".into(),
            marker: "generate:mod".into(),
            lines: lines.iter().map(|l| (*l).to_owned()).collect(),
        }
    }

    #[test]
    fn lines_go_above_the_marker_with_its_indentation_once() {
        let text = "mod a;\n    // generate:mod (keep)\nrest\n";
        let once = insert_lines(text, &insert(&["mod b;"]));
        assert_eq!(
            once,
            "mod a;\n    mod b;\n    // generate:mod (keep)\nrest\n"
        );
        assert_eq!(
            insert_lines(&once, &insert(&["mod b;"])),
            once,
            "idempotent"
        );
        assert_eq!(
            insert_lines(text, &insert(&["mod a;"])),
            text,
            "held already"
        );
    }

    #[test]
    fn a_plan_that_would_overwrite_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.rs"), "// generate:mod\n").unwrap();
        std::fs::write(dir.path().join("taken.rs"), "mine").unwrap();
        let plan = Plan {
            creates: vec![
                Create {
                    path: "new.rs".into(),
                    content: "new".into(),
                },
                Create {
                    path: "taken.rs".into(),
                    content: "theirs".into(),
                },
            ],
            inserts: vec![insert(&["mod new;"])],
            rewrites: vec![],
        };
        let err = plan.apply(dir.path()).unwrap_err().to_string();
        assert!(err.contains("taken.rs"), "{err}");
        assert!(!dir.path().join("new.rs").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("taken.rs")).unwrap(),
            "mine"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("x.rs")).unwrap(),
            "// generate:mod\n"
        );
    }

    #[test]
    fn a_missing_marker_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.rs"), "mod a;\n").unwrap();
        let plan = Plan {
            inserts: vec![insert(&["mod b;"])],
            ..Plan::default()
        };
        let err = plan.check(dir.path()).unwrap_err().to_string();
        assert!(err.contains("generate:mod"), "{err}");
    }
}
