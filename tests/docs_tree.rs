//! The docs a new reader starts from stay true to the tree: README's Layout names every
//! top-level folder of `src/` and `modules/`, and docs/architecture.md's DI graph names every
//! component of `module!`.

use std::collections::BTreeSet;
use std::path::Path;

/// The folders a Layout block lists under `top` (`src/`, `modules/`): the indented lines
/// following the unindented `top` line, up to the next unindented line, each read as
/// `  name/  description`.
fn listed_under(layout: &str, top: &str) -> BTreeSet<String> {
    let mut listed = BTreeSet::new();
    let mut inside = false;
    for line in layout.lines() {
        if !line.starts_with(' ') {
            inside = line.split_whitespace().next() == Some(top);
            continue;
        }
        if inside
            && let Some(name) = line
                .split_whitespace()
                .next()
                .and_then(|w| w.strip_suffix('/'))
        {
            listed.insert(name.to_owned());
        }
    }
    listed
}

/// The fenced block under README's `## Layout` heading.
fn layout_block(readme: &str) -> Option<&str> {
    let after = &readme[readme.find("\n## Layout")?..];
    let open = after.find("```")?;
    let body = &after[open..];
    let body = &body[body.find('\n')? + 1..];
    Some(&body[..body.find("```")?])
}

/// Those of `folders` that `layout` does not list under `top`, as `top/name/`.
fn missing(layout: &str, top: &str, folders: &[String]) -> Vec<String> {
    let listed = listed_under(layout, top);
    folders
        .iter()
        .filter(|f| !listed.contains(f.as_str()))
        .map(|f| format!("{top}{f}/"))
        .collect()
}

fn folders_of(dir: &Path) -> Vec<String> {
    let mut folders: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    folders
}

#[test]
fn readme_layout_lists_every_folder_of_src_and_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let layout = layout_block(&readme).expect("README.md has a fenced block under ## Layout");
    let mut absent = missing(layout, "src/", &folders_of(&root.join("src")));
    absent.extend(missing(
        layout,
        "modules/",
        &folders_of(&root.join("modules")),
    ));
    assert!(
        absent.is_empty(),
        "README.md's Layout does not list: {} (add a line `  name/  what it holds` under src/ or modules/)",
        absent.join(", ")
    );
    // The check sees something: the folders every checkout has are listed.
    for known in ["controller", "service", "repository"] {
        assert!(
            listed_under(layout, "src/").contains(known),
            "{known}/ under src/"
        );
    }
}

#[test]
fn a_folder_missing_from_the_layout_is_named() {
    let readme = "# x\n\n## Layout\n\n```\nsrc/\n  cmd/   commands\n  web/   the edge kit\nmodules/\n  config/  loading\ntests/\n  api/\n```\n";
    let layout = layout_block(readme).unwrap();
    let src = ["cmd", "web", "server"].map(String::from);
    assert_eq!(missing(layout, "src/", &src), ["src/server/"]);
    let modules = ["config", "api"].map(String::from);
    // `api/` is listed, but under tests/: it does not count for modules/.
    assert_eq!(missing(layout, "modules/", &modules), ["modules/api/"]);
    assert!(layout_block("# no layout here\n").is_none());
}

/// The component names of `module!` in `assembly` (its `components = [...]` list, comments
/// left out).
fn module_components(assembly: &str) -> Vec<String> {
    let Some(start) = assembly.find("components = [") else {
        return Vec::new();
    };
    let list = &assembly[start + "components = [".len()..];
    let list = &list[..list.find(']').unwrap_or(list.len())];
    list.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(String::from)
        .collect()
}

/// Those of `components` that `doc` never names as a whole word.
fn unnamed<'a>(doc: &str, components: &'a [String]) -> Vec<&'a str> {
    let words: BTreeSet<&str> = doc
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    components
        .iter()
        .map(String::as_str)
        .filter(|c| !words.contains(c))
        .collect()
}

#[test]
fn the_architecture_page_names_every_component_of_the_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let assembly = std::fs::read_to_string(root.join("src/assembly/mod.rs")).expect("assembly");
    let components = module_components(&assembly);
    assert!(
        components.len() >= 30 && components.iter().any(|c| c == "HelloServiceImpl"),
        "module! read: {components:?}"
    );
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).expect("architecture.md");
    let graph = &doc[doc.find("```mermaid").expect("a mermaid graph")..];
    let absent = unnamed(graph, &components);
    assert!(
        absent.is_empty(),
        "docs/architecture.md's DI graph does not show: {} (add each as a node with its arrows)",
        absent.join(", ")
    );
}

#[test]
fn a_component_missing_from_the_graph_is_named() {
    let assembly = "module! {\n  pub M {\n    components = [\n      // clients\n      AClient, BRepo, // note\n      CServiceImpl,\n    ],\n  }\n}";
    let components = module_components(assembly);
    assert_eq!(components, ["AClient", "BRepo", "CServiceImpl"]);
    // A prefix of another name does not count.
    assert_eq!(
        unnamed("AClient --> CServiceImplX; BRepo", &components),
        ["CServiceImpl"]
    );
}
