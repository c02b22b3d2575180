//! Every relative link in the repository's Markdown files points to a file or folder that
//! exists, and every `#anchor` into a Markdown file names one of its headings (GitHub's slug
//! rules). Links to other sites are not followed. Fails naming each file, line and target.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

/// Folders never searched: build output, vendored code, git's own files.
const SKIPPED_DIRS: &[&str] = &["target", "vendor", ".git"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_relative_link_in_the_markdown_files_resolves() {
    let root = root();
    let mut files = Vec::new();
    markdown_files(&root, &mut files);
    files.sort();
    assert!(
        files.iter().any(|file| file.ends_with("README.md")),
        "no README.md found under {}: the walk is broken",
        root.display()
    );
    let mut anchors = AnchorCache::default();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
        for link in links(&text) {
            checked += 1;
            if let Some(problem) = check(file, &link.target, &mut anchors) {
                broken.push(format!(
                    "{}:{}: {} ({problem})",
                    relative(&root, file),
                    link.line,
                    link.target
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "{} broken link(s) among {checked} in {} Markdown files:\n{}",
        broken.len(),
        files.len(),
        broken.join("\n")
    );
}

#[test]
fn the_link_parser_and_the_slugs_follow_github() {
    let text = "# The HTTP API: `grantflow serve`\n\
                see [a](docs/a.md#x-y) and [b](<b c.md>) and [c](https://example.org)\n\
                ```\n[not](a-link.md)\n```\n\
                `[nor](this.md)`\n[ref]: ../up.md \"title\"\n\
                ## Figures, and how they follow from events\n## Figures, and how they follow from events\n";
    let targets: Vec<String> = links(text).into_iter().map(|link| link.target).collect();
    assert_eq!(
        targets,
        ["docs/a.md#x-y", "b c.md", "https://example.org", "../up.md"]
    );
    let slugs = heading_slugs(text);
    for slug in [
        "the-http-api-grantflow-serve",
        "figures-and-how-they-follow-from-events",
        "figures-and-how-they-follow-from-events-1",
    ] {
        assert!(slugs.contains(slug), "{slug} missing from {slugs:?}");
    }
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()));
    for entry in entries {
        let entry = entry.expect("a directory entry");
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().expect("a file type");
        if kind.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                markdown_files(&path, out);
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

fn relative(root: &Path, file: &Path) -> String {
    file.strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string()
}

struct Link {
    line: usize,
    target: String,
}

/// The targets of inline links `[text](target)`, images and reference definitions
/// `[name]: target`, outside code blocks and code spans.
fn links(text: &str) -> Vec<Link> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(marker) = fence {
            if trimmed.starts_with(marker) {
                fence = None;
            }
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = Some(&trimmed[..3]);
            continue;
        }
        let line_text = without_code_spans(line);
        let number = index + 1;
        let mut at = 0;
        while let Some(found) = line_text[at..].find("](") {
            let start = at + found + 2;
            if let Some((target, end)) = link_target(&line_text[start..]) {
                out.push(Link {
                    line: number,
                    target,
                });
                at = start + end;
            } else {
                at = start;
            }
        }
        // A reference definition: `[name]: target` at the start of a line.
        if let Some(rest) = line.trim_start().strip_prefix('[') {
            if let Some(close) = rest.find("]:") {
                let target = rest[close + 2..].split_whitespace().next().unwrap_or("");
                if !target.is_empty() && !rest[..close].contains('[') {
                    out.push(Link {
                        line: number,
                        target: target.trim_matches(['<', '>']).to_string(),
                    });
                }
            }
        }
    }
    out
}

/// The line with every `code span` blanked out (same length, so columns stay).
fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_span = false;
    for ch in line.chars() {
        if ch == '`' {
            in_span = !in_span;
            out.push(' ');
        } else if in_span {
            out.push(' ');
        } else {
            out.push(ch);
        }
    }
    out
}

/// The target after `](`: `<with spaces>` or up to the closing `)` (nested parentheses
/// balanced), an optional title left out. Returns it with the length consumed.
fn link_target(rest: &str) -> Option<(String, usize)> {
    if let Some(inner) = rest.strip_prefix('<') {
        let close = inner.find('>')?;
        return Some((inner[..close].to_string(), close + 2));
    }
    let mut depth = 0usize;
    for (offset, ch) in rest.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' if depth == 0 => {
                let target = rest[..offset].split_whitespace().next().unwrap_or("");
                return Some((target.to_string(), offset + 1));
            }
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Why a link is broken, or `None` when it resolves.
fn check(file: &Path, target: &str, anchors: &mut AnchorCache) -> Option<String> {
    if target.is_empty() {
        return Some("empty target".to_string());
    }
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path_part, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let dir = file.parent().expect("a file has a folder");
    let resolved = if path_part.is_empty() {
        file.to_path_buf()
    } else if let Some(from_root) = path_part.strip_prefix('/') {
        root().join(from_root)
    } else {
        normalize(&dir.join(path_part))
    };
    if !resolved.exists() {
        return Some(format!("no such file: {}", relative(&root(), &resolved)));
    }
    let anchor = anchor.filter(|anchor| !anchor.is_empty())?;
    if resolved.extension().is_none_or(|ext| ext != "md") {
        return None;
    }
    let known = anchors.of(&resolved);
    if known.contains(anchor) {
        None
    } else {
        Some(format!(
            "no heading with the anchor #{anchor} in {}",
            relative(&root(), &resolved)
        ))
    }
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[derive(Default)]
struct AnchorCache {
    files: HashMap<PathBuf, HashSet<String>>,
}

impl AnchorCache {
    fn of(&mut self, file: &Path) -> &HashSet<String> {
        self.files.entry(file.to_path_buf()).or_insert_with(|| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            heading_slugs(&text)
        })
    }
}

/// The anchors GitHub gives a Markdown file's headings (lower case, punctuation dropped,
/// spaces to hyphens, `-1`, `-2` for repeats), plus explicit `<a name|id="...">` anchors.
fn heading_slugs(text: &str) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = HashSet::new();
    let mut fence: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(marker) = fence {
            if trimmed.starts_with(marker) {
                fence = None;
            }
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = Some(&trimmed[..3]);
            continue;
        }
        for key in ["name=\"", "id=\""] {
            let mut rest = line;
            while let Some(found) = rest.find(key) {
                let after = &rest[found + key.len()..];
                if let Some(close) = after.find('"') {
                    out.insert(after[..close].to_string());
                }
                rest = after;
            }
        }
        let level = trimmed.chars().take_while(|ch| *ch == '#').count();
        if level == 0 || level > 6 || !trimmed[level..].starts_with(' ') {
            continue;
        }
        let base = slug(trimmed[level..].trim().trim_end_matches('#').trim());
        let count = seen.entry(base.clone()).or_insert(0);
        let anchor = if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        };
        *count += 1;
        out.insert(anchor);
    }
    out
}

/// GitHub's slug of a heading's text: links reduced to their text, then lower case, every
/// character but letters, digits, spaces, `-` and `_` dropped, spaces to `-`.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // `[text](target)` -> `text`
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find("](") {
            Some(close) => {
                text.push_str(&after[..close]);
                let tail = &after[close + 2..];
                rest = tail.find(')').map_or("", |end| &tail[end + 1..]);
            }
            None => {
                text.push('[');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter(|ch| ch.is_alphanumeric() || matches!(ch, ' ' | '-' | '_'))
        .map(|ch| if ch == ' ' { '-' } else { ch })
        .collect()
}
