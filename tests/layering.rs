//! The layer rules of docs/architecture.md ("Layer rules") as a test: every file under `src/` is
//! scanned for the crate paths it names (`use crate::x`, `use crate::{x, y}` and inline
//! `crate::x::` paths; comments and string literals are skipped), and an arrow that points up
//! fails with each offending `file:line`. Its own binary, so it builds without the API tests.

use std::path::{Path, PathBuf};

/// The top-level folders of `src/`, lowest first, as the rules name them.
const SERVER: &str = "server";
const CONTROLLER: &str = "controller";
const MIDDLEWARE: &str = "middleware";
const WEB: &str = "web";
const SERVICE: &str = "service";
const REPOSITORY: &str = "repository";
const MODEL: &str = "model";
const META: &str = "meta";
const ASSEMBLY: &str = "assembly";
const CMD: &str = "cmd";

/// Crates in `modules/` that talk to something outside the process (or sample it): only
/// repositories and services use them, never `server/`, a controller, middleware or the edge kit.
const CLIENT_CRATES: &[&str] = &[
    "goex_breaker",
    "goex_cache",
    "goex_consul",
    "goex_database",
    "goex_jenkins",
    "goex_jwt",
    "goex_mongo",
    "goex_profiling",
    "goex_redis",
    "goex_shedding",
    "goex_sms",
];

/// What a file of `layer` may not import, and why (the message names the rule).
fn forbidden(layer: &str) -> Vec<(&'static str, &'static str)> {
    let mut rules = Vec::new();
    let below_server = [
        CONTROLLER, MIDDLEWARE, WEB, SERVICE, REPOSITORY, MODEL, META,
    ];
    if below_server.contains(&layer) {
        rules.push((SERVER, "nothing below server/ imports it"));
        rules.push((CMD, "nothing below cmd/ imports it"));
    }
    let below_controller = [WEB, SERVICE, REPOSITORY, MODEL, META];
    if below_controller.contains(&layer) {
        rules.push((CONTROLLER, "nothing below controller/ imports it"));
        rules.push((MIDDLEWARE, "nothing below controller/ imports middleware/"));
        rules.push((ASSEMBLY, "nothing below controller/ imports the assembly"));
    }
    if [SERVICE, REPOSITORY, MODEL, META].contains(&layer) {
        rules.push((
            WEB,
            "the edge kit sits above services; config imports no edge type",
        ));
    }
    if [SERVER, CONTROLLER, MIDDLEWARE, WEB].contains(&layer) {
        rules.push((
            REPOSITORY,
            "the edge reaches repositories only through services",
        ));
    }
    match layer {
        // (And sideways: a controller imports only its own feature, see `check`.)
        CONTROLLER => {
            rules.push((
                MIDDLEWARE,
                "controllers use the edge kit (web/), not middleware/",
            ));
            rules.push((
                ASSEMBLY,
                "controllers are generic over the module, never AppModule",
            ));
        }
        MIDDLEWARE => {
            rules.push((CONTROLLER, "middleware never uses controllers"));
            rules.push((ASSEMBLY, "middleware never uses the assembly"));
        }
        REPOSITORY => rules.push((SERVICE, "a repository never imports a service")),
        MODEL => {
            rules.push((SERVICE, "models sit below services"));
            rules.push((REPOSITORY, "models sit below repositories"));
        }
        META => {
            rules.push((SERVICE, "config sits below services"));
            rules.push((REPOSITORY, "config sits below repositories"));
        }
        _ => {}
    }
    rules
}

/// One upward arrow.
#[derive(Debug, PartialEq, Eq)]
struct Violation {
    line: usize,
    target: String,
    rule: &'static str,
}

/// The layer of a path relative to `src/` (`controller/auth.rs` → `controller`); `None` for the
/// crate roots (`lib.rs`, `main.rs`) and other top-level files.
fn layer_of(path: &Path) -> Option<&str> {
    let mut parts = path.components();
    let first = parts.next()?.as_os_str().to_str()?;
    parts.next().is_some().then_some(first)
}

/// The checker: the upward imports of the file at `path` (relative to `src/`) with text `text`.
fn check(path: &Path, text: &str) -> Vec<Violation> {
    let Some(layer) = layer_of(path) else {
        return Vec::new();
    };
    let rules = forbidden(layer);
    let code = code_only(text);
    let mut found = Vec::new();
    for (line, crate_path) in crate_paths(&code) {
        let mut segments = crate_path.split("::");
        let top = segments.next().unwrap_or_default();
        if let Some((_, rule)) = rules.iter().find(|(target, _)| *target == top) {
            found.push(Violation {
                line,
                target: format!("crate::{crate_path}"),
                rule,
            });
        } else if layer == CONTROLLER && top == CONTROLLER {
            let feature = segments.next().unwrap_or_default();
            if !own_feature(path, feature) {
                found.push(Violation {
                    line,
                    target: format!("crate::{crate_path}"),
                    rule: "controllers do not import each other: shared bits belong in web/",
                });
            }
        }
    }
    if [SERVER, CONTROLLER, MIDDLEWARE, WEB].contains(&layer) {
        for (line, name) in identifiers(&code) {
            if CLIENT_CRATES.contains(&name.as_str()) {
                found.push(Violation {
                    line,
                    target: name,
                    rule: "the edge uses no client crate: go through a component of the module",
                });
            }
        }
    }
    found.sort_by_key(|v| v.line);
    found
}

/// Whether `feature` (`socket` of `crate::controller::socket::x`) is the controller file at
/// `path` itself or the folder it is in.
fn own_feature(path: &Path, feature: &str) -> bool {
    let mut parts = path.components().skip(1);
    let Some(first) = parts.next().and_then(|c| c.as_os_str().to_str()) else {
        return false;
    };
    first == feature || Path::new(first).file_stem().and_then(|s| s.to_str()) == Some(feature)
}

/// `text` with comments and the contents of string and character literals blanked (newlines
/// kept, so line numbers stay true).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let ident_before = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (!ident_before || byte_prefix(&chars, i))
            && matches!(next, Some('"' | '#'))
        {
            // A raw string r"..." / r#"..."# (br"..." too: the b went out as code).
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let hashes = j - i - 1;
            out.extend(std::iter::repeat_n(' ', j + 1 - i));
            i = j + 1;
            while i < chars.len() {
                if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                    out.extend(std::iter::repeat_n(' ', hashes + 1));
                    i += hashes + 1;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() {
                match chars[i] {
                    '\\' => {
                        out.push(' ');
                        if let Some(&escaped) = chars.get(i + 1) {
                            out.push(blank(escaped));
                        }
                        i += 2;
                    }
                    '"' => {
                        out.push(' ');
                        i += 1;
                        break;
                    }
                    other => {
                        out.push(blank(other));
                        i += 1;
                    }
                }
            }
        } else if c == '\'' && next == Some('\\') {
            // An escaped character literal ('\'', '\n', '\u{7f}').
            out.push_str("   ");
            i += 3;
            while i < chars.len() && chars[i] != '\'' {
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            // A character literal ('"', 'a'); anything else after ' is a lifetime.
            out.push_str("   ");
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether the `r` at `i` follows a lone `b` (a raw byte string, `br"..."`).
fn byte_prefix(chars: &[char], i: usize) -> bool {
    i > 0
        && chars[i - 1] == 'b'
        && (i < 2 || !(chars[i - 2].is_alphanumeric() || chars[i - 2] == '_'))
}

/// Every crate path in `code` with its line: `x::y` for `crate::x::y`, one entry per item of a
/// `crate::{x, y::{z, w}}` group.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        let ident_before = start > 0 && {
            let b = bytes[start - 1];
            b.is_ascii_alphanumeric() || b == b'_'
        };
        if ident_before {
            continue;
        }
        expand(code, from, String::new(), &mut found);
    }
    found
}

/// The paths of the tree at `code[at..]` (after a `::`), prefixed with `prefix`.
fn expand(code: &str, at: usize, prefix: String, found: &mut Vec<(usize, String)>) {
    let rest = &code[at..];
    let skipped = rest.len() - rest.trim_start().len();
    let at = at + skipped;
    let rest = &code[at..];
    let line = code[..at].matches('\n').count() + 1;
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut item_start = at + 1;
        for (offset, c) in group.char_indices() {
            let pos = at + 1 + offset;
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    push_item(code, item_start, pos, &prefix, found);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    push_item(code, item_start, pos, &prefix, found);
                    item_start = pos + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let path: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let path = path.trim_end_matches(':');
    if path.is_empty() {
        return;
    }
    let after = at + path.len();
    let full = join(&prefix, path);
    if code[after..].starts_with("::{") {
        expand(code, after + 2, full, found);
    } else {
        found.push((line, full));
    }
}

/// One item of a group (`x::y`, `x::{..}`, `self`, `x as y`).
fn push_item(code: &str, start: usize, end: usize, prefix: &str, found: &mut Vec<(usize, String)>) {
    let item = code[start..end].trim();
    if item.is_empty() {
        return;
    }
    if item == "self" {
        let line = code[..start].matches('\n').count() + 1;
        found.push((line, prefix.to_owned()));
        return;
    }
    expand(code, start, prefix.to_owned(), found);
}

fn join(prefix: &str, path: &str) -> String {
    if prefix.is_empty() {
        path.to_owned()
    } else {
        format!("{prefix}::{path}")
    }
}

/// Every identifier in `code` with its line.
fn identifiers(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (index, line) in code.lines().enumerate() {
        for word in line.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if !word.is_empty() {
                found.push((index + 1, word.to_owned()));
            }
        }
    }
    found
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_arrows_of_src_point_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 50, "src/ was not found: {}", src.display());
    let mut report = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src/");
        let text = std::fs::read_to_string(file).expect("a readable source file");
        for v in check(relative, &text) {
            report.push(format!(
                "src/{}:{}: {} ({})",
                relative.display(),
                v.line,
                v.target,
                v.rule
            ));
        }
    }
    assert!(
        report.is_empty(),
        "imports against the layer rules (docs/architecture.md, \"Layer rules\"):\n{}",
        report.join("\n")
    );
}

/// The checker on a planted file: the targets it reports.
fn planted(path: &str, text: &str) -> Vec<(usize, String)> {
    check(Path::new(path), text)
        .into_iter()
        .map(|v| (v.line, v.target))
        .collect()
}

#[test]
fn a_planted_upward_import_is_caught_in_every_form() {
    let text = "use crate::service::auth::AuthService;\n\
                use crate::server::routes::Routes;\n\
                fn f() { crate::middleware::lifecycle::x(); }\n";
    assert_eq!(
        planted("controller/hello.rs", text),
        [
            (2, "crate::server::routes::Routes".to_owned()),
            (3, "crate::middleware::lifecycle::x".to_owned()),
        ]
    );
    let grouped = "use crate::{\n    model::user::User,\n    assembly::AppModule,\n};\n";
    assert_eq!(
        planted("web/auth.rs", grouped),
        [(3, "crate::assembly::AppModule".to_owned())]
    );
    let nested = "use crate::{model::{user::User}, controller::{self, auth::X}};";
    assert_eq!(
        planted("service/hello.rs", nested),
        [
            (1, "crate::controller".to_owned()),
            (1, "crate::controller::auth::X".to_owned()),
        ]
    );
}

#[test]
fn each_layer_has_its_own_rules() {
    let server = "use crate::server::grpc::X;";
    for below in [
        "controller/a.rs",
        "service/a.rs",
        "repository/a.rs",
        "model/a.rs",
        "meta/a.rs",
        "web/a.rs",
        "middleware/a.rs",
    ] {
        assert_eq!(planted(below, server).len(), 1, "{below}");
    }
    assert!(planted("server/http.rs", server).is_empty());
    assert!(planted("cmd/http.rs", server).is_empty());
    assert!(planted("assembly/mod.rs", server).is_empty());
    assert!(planted("lib.rs", server).is_empty());

    let web = "use crate::web::envelope::status;";
    for below in ["service/a.rs", "repository/a.rs", "model/a.rs", "meta/a.rs"] {
        assert_eq!(planted(below, web).len(), 1, "{below}");
    }

    let service = "use crate::service::sms::masked;";
    assert_eq!(planted("repository/sms.rs", service).len(), 1);
    assert!(planted("controller/sms.rs", service).is_empty());

    let edge = "pub x: crate::web::client_addr::TrustedProxies,";
    assert_eq!(planted("meta/config.rs", edge).len(), 1);
    assert_eq!(planted("meta/config/server.rs", edge).len(), 1);
    assert!(planted("controller/auth.rs", edge).is_empty());
    assert!(planted("middleware/lifecycle.rs", edge).is_empty());

    let middleware = "use crate::middleware::request_id::X;";
    assert_eq!(planted("web/extract.rs", middleware).len(), 1);
    assert_eq!(planted("controller/socket.rs", middleware).len(), 1);
    assert!(planted("middleware/lifecycle.rs", middleware).is_empty());
    assert!(planted("server/http.rs", middleware).is_empty());

    let assembly = "use crate::assembly::AppModule;";
    assert_eq!(planted("middleware/x.rs", assembly).len(), 1);
    assert!(planted("server/grpc.rs", assembly).is_empty());
}

#[test]
fn controllers_import_only_their_own_feature() {
    let sideways = "use crate::controller::auth::client_bucket;";
    assert_eq!(planted("controller/sms.rs", sideways).len(), 1);
    assert!(planted("controller/auth.rs", sideways).is_empty());
    let own = "use crate::controller::socket::protocol::Frame;";
    assert!(planted("controller/socket/connection.rs", own).is_empty());
    assert!(planted("controller/socket.rs", own).is_empty());
    assert_eq!(planted("controller/grpc/user.rs", own).len(), 1);
}

#[test]
fn the_edge_names_no_client_crate() {
    let text = "use goex_consul::ConsulClient;\nfn f() { goex_profiling::cpu_profile(); }\n\
                use goex_errors::ERR_PARAM;";
    assert_eq!(
        planted("server/registration.rs", text),
        [
            (1, "goex_consul".to_owned()),
            (2, "goex_profiling".to_owned())
        ]
    );
    assert_eq!(planted("controller/debug.rs", text).len(), 2);
    assert_eq!(planted("web/envelope.rs", text).len(), 2);
    assert_eq!(planted("middleware/lifecycle.rs", text).len(), 2);
    // The request's consistency session goes through the service that names it.
    let session = "fn f() { goex_database::session::scope(key, call) }
                   fn g() { crate::service::session::scope(key, call) }";
    assert_eq!(
        planted("middleware/lifecycle.rs", session),
        [(1, "goex_database".to_owned())]
    );
    assert!(planted("repository/registration.rs", text).is_empty());
    assert!(planted("service/profiling.rs", text).is_empty());
}

#[test]
fn the_edge_reaches_repositories_through_services() {
    let text = "use crate::repository::mysql::user::UserRepository;";
    for edge in [
        "server/http.rs",
        "controller/a.rs",
        "web/a.rs",
        "middleware/a.rs",
    ] {
        assert_eq!(planted(edge, text).len(), 1, "{edge}");
    }
    assert!(planted("service/user.rs", text).is_empty());
    assert!(planted("cmd/users.rs", text).is_empty());
}

#[test]
fn comments_strings_and_lookalikes_are_not_imports() {
    let text = r##"//! Was `crate::server::routes` once.
/// See [`crate::server::grpc`].
/* crate::server::x */
const A: &str = "crate::server::x";
const B: &str = r#"crate::server::"y""#;
const Q: char = '"'; const E: char = '\'';
fn f<'a>(x: &'a str) -> &'a str { x }
use goex_crate::server::X;
"##;
    assert!(planted("web/x.rs", text).is_empty());
    // The code after a literal is still read.
    let after = "const Q: char = '\"'; use crate::server::X;";
    assert_eq!(planted("web/x.rs", after).len(), 1);
    let after_raw = "const B: &str = r#\"a\"#; use crate::server::X;";
    assert_eq!(planted("web/x.rs", after_raw).len(), 1);
}
