#![cfg(not(target_arch = "wasm32"))]
//! Docs that cannot drift: every relative link and `#anchor` in README.md and
//! docs/*.md resolves, every variable spin.toml declares is documented in
//! docs/configuration.md, and the README stays a five-minute read that holds
//! the commands spin-smoke and CI take from it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The project's Markdown: README.md and docs/*.md, by path from the root.
fn pages() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = vec![PathBuf::from("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/ exists") {
        let name = entry.expect("docs/ is readable").file_name();
        let name = name.to_str().expect("a UTF-8 file name");
        if name.ends_with(".md") {
            paths.push(Path::new("docs").join(name));
        }
    }
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(root.join(&p))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.to_str().expect("a UTF-8 path").to_string(), text)
        })
        .collect()
}

/// The lines of a page outside fenced code blocks, whose `#` and `](` are
/// not Markdown.
fn prose(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// The anchor GitHub gives a heading: lowercase, spaces to '-', every other
/// character but letters, digits, '-' and '_' dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// A page's anchors; a repeated heading gets `-1`, `-2`, ... as on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading);
        let mut anchor = base.clone();
        let mut n = 0;
        while !seen.insert(anchor.clone()) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
    }
    seen
}

/// The targets of a page's `[text](target)` links, code spans left out.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose(text) {
        // Every other piece between backticks is code.
        let outside_code = line.split('`').step_by(2);
        for mut rest in outside_code {
            while let Some(start) = rest.find("](") {
                rest = &rest[start + 2..];
                if let Some(end) = rest.find(')') {
                    targets.push(rest[..end].to_string());
                }
            }
        }
    }
    targets
}

/// Every relative link of every page that does not resolve, in words.
fn broken_links(pages: &BTreeMap<String, String>, exists: impl Fn(&str) -> bool) -> Vec<String> {
    let mut broken = Vec::new();
    for (page, text) in pages {
        let dir = Path::new(page).parent().unwrap_or(Path::new(""));
        for target in link_targets(text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                page.clone()
            } else {
                normalize(&dir.join(path))
            };
            if !pages.contains_key(&file) && !exists(&file) {
                broken.push(format!("{page}: link to {target}: no file {file}"));
            } else if !anchor.is_empty() {
                match pages.get(&file) {
                    Some(t) if anchors(t).contains(anchor) => {}
                    Some(_) => broken.push(format!(
                        "{page}: link to {target}: {file} has no heading #{anchor}"
                    )),
                    None => broken.push(format!(
                        "{page}: link to {target}: #{anchor} in a file that is not Markdown"
                    )),
                }
            }
        }
    }
    broken
}

/// `docs/../README.md` as `README.md`.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.iter().map(|p| p.to_str().expect("a UTF-8 path")) {
        match part {
            "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let broken = broken_links(&pages(), |file| root.join(file).exists());
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The check itself finds what breaks: a missing heading, a missing file,
/// a moved section still linked by its old anchor.
#[test]
fn a_broken_link_is_found() {
    let pages: BTreeMap<String, String> = [
        (
            "README.md",
            "# Title\n\n[ok](docs/a.md#two-words) [gone](#quick-start)\n",
        ),
        (
            "docs/a.md",
            "# A\n\n## Two words\n\n[up](../README.md#title) [no](b.md)\n",
        ),
    ]
    .into_iter()
    .map(|(p, t)| (p.to_string(), t.to_string()))
    .collect();
    let broken = broken_links(&pages, |_| false);
    assert_eq!(
        broken,
        [
            "README.md: link to #quick-start: README.md has no heading #quick-start",
            "docs/a.md: link to b.md: no file docs/b.md",
        ]
    );
}

#[test]
fn anchors_are_githubs() {
    let text = "# The pull-through cache\n## Upkeep: figures, `gc` and removing entries\n\
                ```sh\n# not a heading\n```\n## Pins\n## Pins\n#no-space\n";
    let expected = [
        "pins",
        "pins-1",
        "the-pull-through-cache",
        "upkeep-figures-gc-and-removing-entries",
    ];
    assert_eq!(anchors(text), expected.map(String::from).into());
    assert_eq!(
        slug("Akamai Functions and Fermyon Cloud: the hosted profile"),
        "akamai-functions-and-fermyon-cloud-the-hosted-profile"
    );
}

#[test]
fn every_spin_toml_variable_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table = std::fs::read_to_string(root.join("spin.toml"))
        .expect("spin.toml")
        .parse()
        .expect("spin.toml is TOML");
    let variables = manifest["variables"].as_table().expect("[variables]");
    let configuration = std::fs::read_to_string(root.join("docs/configuration.md"))
        .expect("docs/configuration.md, where the variables are documented");
    let undocumented: Vec<&String> = variables
        .keys()
        .filter(|name| !configuration.contains(&format!("`{name}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "spin.toml declares variables docs/configuration.md does not name (as `name`): {undocumented:?}"
    );
}

/// A newcomer's read; spin-smoke reuses the first `spin up` line's flags and
/// CI runs ./scripts/test.sh, so both stay as they are.
#[test]
fn the_readme_is_a_five_minute_read_with_its_commands() {
    let readme = &pages()["README.md"];
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "README.md is {lines} lines; keep it to 250 and move the rest to docs/"
    );
    let first_spin_up = readme
        .lines()
        .find(|l| l.trim_start().starts_with("spin up"));
    assert_eq!(
        first_spin_up,
        Some(
            "spin up --build --runtime-config-file runtime-config.toml --direct-mounts --allow-transient-write"
        ),
        "the README's first `spin up` line is the one spin-smoke runs"
    );
    assert!(
        readme.contains("```sh\n./scripts/test.sh\n```"),
        "the test command CI runs"
    );
}
