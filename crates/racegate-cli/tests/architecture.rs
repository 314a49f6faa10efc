//! The import rule of racegate-cli, checked on its own source so that it cannot rot.
//!
//! `ARCHITECTURE.md` at the repository root holds the rule as a table ("Import rule"): for each
//! top-level module of the `racegate_cli` library, the other top-level modules it may import.
//! This test parses every `src/**/*.rs` with `syn`, resolves each `crate::`, `super::` and
//! `self::` path (in `use` items, in code, and inside macro invocations) to the top-level module
//! it names, and fails on every edge the table does not allow, on a module missing from the
//! table, and on `process::exit` outside `cli/` (only the command line ends the process).
//!
//! `cargo test -p racegate-cli --test architecture -- --nocapture` also prints the import
//! graph (`from -> to (uses)`), which is how the figures in the closing note were taken.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// A module path inside the crate (`["stress", "engine"]`); empty for the crate root.
type ModPath = Vec<String>;

/// Edges that exist today but break the rule, each with the work that removes it. The test
/// fails when one of them is gone (so this list only shrinks) or when a new one appears.
///
/// `hunt/` is rewritten on its own branch (issue 10 and the hunt half of issue 12): there it
/// takes a resolved config from `cli/hunt.rs`, returns its own error type, and stops the
/// process through the shared interrupt policy instead of `process::exit`.
const KNOWN_VIOLATIONS: &[(&str, &str, &str)] = &[];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn architecture_md() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ARCHITECTURE.md")
}

/// Every `.rs` file under `src` with its module path; `main.rs` (a separate crate) is left out.
fn modules(src: &Path) -> Vec<(ModPath, PathBuf)> {
    fn walk(dir: &Path, prefix: &[String], out: &mut Vec<(ModPath, PathBuf)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("UTF-8 file names")
                .to_string();
            if path.is_dir() {
                let mut p = prefix.to_vec();
                p.push(name);
                walk(&path, &p, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut p = prefix.to_vec();
                match (prefix.is_empty(), name.as_str()) {
                    (true, "main") => continue,
                    (true, "lib") | (false, "mod") => {}
                    _ => p.push(name),
                }
                out.push((p, path));
            }
        }
    }
    let mut out = Vec::new();
    walk(src, &[], &mut out);
    out
}

/// One reference from a file to a path of the crate.
#[derive(Debug, Clone)]
struct Reference {
    /// The module the reference is written in.
    from: ModPath,
    /// The crate path it names, resolved (`["exit", "CliError"]`).
    to: Vec<String>,
    file: PathBuf,
    line: usize,
}

struct Collector<'a> {
    file: &'a Path,
    module: ModPath,
    refs: Vec<Reference>,
    exits: Vec<(PathBuf, usize)>,
}

impl Collector<'_> {
    /// Resolve a path that starts with `crate`, `self` or `super`; others are external crates,
    /// std, or names local to the module, which cannot leave it.
    fn resolve(&self, segments: &[String]) -> Option<Vec<String>> {
        let mut base = self.module.clone();
        let mut rest = segments;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                rest = &rest[1..];
            }
            Some("self") => rest = &rest[1..],
            Some("super") => {
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
            }
            _ => return None,
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn record(&mut self, segments: Vec<String>, line: usize) {
        if segments.len() >= 2
            && segments[segments.len() - 2] == "process"
            && segments[segments.len() - 1] == "exit"
        {
            self.exits.push((self.file.to_path_buf(), line));
        }
        if let Some(to) = self.resolve(&segments) {
            self.refs.push(Reference {
                from: self.module.clone(),
                to,
                file: self.file.to_path_buf(),
                line,
            });
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut s = prefix.clone();
                if n.ident != "self" {
                    s.push(n.ident.to_string());
                }
                self.record(s, n.ident.span().start().line);
            }
            syn::UseTree::Rename(r) => {
                let mut s = prefix.clone();
                if r.ident != "self" {
                    s.push(r.ident.to_string());
                }
                self.record(s, r.ident.span().start().line);
            }
            syn::UseTree::Glob(g) => {
                let line = g.star_token.spans[0].start().line;
                self.record(prefix.clone(), line);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    /// Paths inside a macro's tokens (`format!("{}", crate::x::y())`): runs of `ident ::`.
    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            match &trees[i] {
                TokenTree::Group(g) => {
                    self.tokens(g.stream());
                    i += 1;
                }
                TokenTree::Ident(id) => {
                    let line = id.span().start().line;
                    let mut segments = vec![id.to_string()];
                    let mut j = i + 1;
                    loop {
                        let colons = matches!(
                            (trees.get(j), trees.get(j + 1)),
                            (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                                if a.as_char() == ':' && b.as_char() == ':'
                        );
                        match (colons, trees.get(j + 2)) {
                            (true, Some(TokenTree::Ident(next))) => {
                                segments.push(next.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    if segments.len() > 1 {
                        self.record(segments, line);
                    }
                    i = j.max(i + 1);
                }
                _ => i += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_some() {
            self.module.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut prefix = Vec::new();
        if u.leading_colon.is_none() {
            self.use_tree(&mut prefix, &u.tree);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        let line = p
            .segments
            .first()
            .map_or(0, |s| s.ident.span().start().line);
        self.record(segments, line);
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }

    // `pub(crate)`, `pub(super)`: visibility, not a use.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    // Doc comments are attributes; intra-doc links are not imports.
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}
}

struct Scan {
    refs: Vec<Reference>,
    exits: Vec<(PathBuf, usize)>,
}

fn scan(src: &Path) -> Scan {
    let mut refs = Vec::new();
    let mut exits = Vec::new();
    for (module, file) in modules(src) {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", file.display()));
        let ast = syn::parse_file(&text)
            .unwrap_or_else(|e| panic!("cannot parse `{}`: {e}", file.display()));
        let mut c = Collector {
            file: &file,
            module,
            refs: Vec::new(),
            exits: Vec::new(),
        };
        c.visit_file(&ast);
        refs.extend(c.refs);
        exits.extend(c.exits);
    }
    Scan { refs, exits }
}

/// The top-level module of a path (`""` for the crate root).
fn top(path: &[String]) -> &str {
    path.first().map_or("", String::as_str)
}

/// The rule table of ARCHITECTURE.md: module → the modules it may import (`None`: any).
fn rule_table(md: &str) -> BTreeMap<String, Option<BTreeSet<String>>> {
    let start = md
        .find("<!-- import-rule -->")
        .expect("ARCHITECTURE.md has an `<!-- import-rule -->` table");
    let end = md[start..]
        .find("<!-- /import-rule -->")
        .map(|e| start + e)
        .expect("the import-rule table is closed by `<!-- /import-rule -->`");
    let names = |cell: &str| -> BTreeSet<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut table = BTreeMap::new();
    for line in md[start..end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // `| `module` | allowed | what it owns |`
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let module = names(cells[1])
            .into_iter()
            .next()
            .expect("a module name in backticks");
        let allowed = if cells[2].contains("everything") {
            None
        } else {
            Some(names(cells[2]))
        };
        assert!(
            table.insert(module.clone(), allowed).is_none(),
            "`{module}` is twice in the import-rule table"
        );
    }
    assert!(!table.is_empty(), "the import-rule table has no rows");
    table
}

/// Every distinct edge between top-level modules, with how many references make it.
fn graph(scan: &Scan) -> BTreeMap<(String, String), usize> {
    let mut g = BTreeMap::new();
    for r in &scan.refs {
        let (from, to) = (top(&r.from), top(&r.to));
        if from != to && !from.is_empty() {
            *g.entry((from.to_string(), to.to_string())).or_default() += 1;
        }
    }
    g
}

#[test]
fn modules_import_only_what_architecture_md_allows() {
    let md = std::fs::read_to_string(architecture_md()).expect("ARCHITECTURE.md at the root");
    let table = rule_table(&md);
    let scan = scan(&src_dir());

    let tops: BTreeSet<String> = modules(&src_dir())
        .into_iter()
        .filter_map(|(m, _)| m.first().cloned())
        .collect();
    let missing: Vec<&String> = tops.iter().filter(|m| !table.contains_key(*m)).collect();
    assert!(
        missing.is_empty(),
        "modules missing from ARCHITECTURE.md's import-rule table: {missing:?}"
    );
    let stale: Vec<&String> = table.keys().filter(|m| !tops.contains(*m)).collect();
    assert!(
        stale.is_empty(),
        "the import-rule table names modules that no longer exist: {stale:?}"
    );

    // (from, what) -> first place it happens
    let mut found: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut note = |from: &str, what: String, file: &Path, line: usize| {
        let place = format!(
            "{}:{line}",
            file.strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap_or(file)
                .display()
        );
        found.entry((from.to_string(), what)).or_insert(place);
    };
    for r in &scan.refs {
        let (from, to) = (top(&r.from), top(&r.to));
        if from == to || from.is_empty() {
            continue;
        }
        let allowed = match table.get(from) {
            Some(None) => true,
            Some(Some(set)) => set.contains(to),
            None => false,
        };
        if !allowed {
            note(from, to.to_string(), &r.file, r.line);
        }
        // The error that carries an exit status is made in `cli/` only.
        if from != "cli" && to == "exit" && r.to.get(1).is_some_and(|s| s == "CliError") {
            note(from, "exit::CliError".into(), &r.file, r.line);
        }
    }
    for (file, line) in &scan.exits {
        let rel = file.strip_prefix(src_dir()).expect("under src");
        let from = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_string())
            .unwrap_or_default();
        if from != "cli" {
            note(&from, "process::exit".into(), file, *line);
        }
    }

    let known: BTreeSet<(String, String)> = KNOWN_VIOLATIONS
        .iter()
        .map(|(f, t, _)| (f.to_string(), t.to_string()))
        .collect();
    let new: Vec<String> = found
        .iter()
        .filter(|(k, _)| !known.contains(*k))
        .map(|((f, t), at)| format!("`{f}` uses `{t}` (first at {at})"))
        .collect();
    let gone: Vec<String> = known
        .iter()
        .filter(|k| !found.contains_key(*k))
        .map(|(f, t)| format!("`{f}` -> `{t}`"))
        .collect();
    assert!(
        new.is_empty(),
        "imports that ARCHITECTURE.md's import rule does not allow:\n  {}\n\
         (engines take configs from cli/ and never import it; see the code map)",
        new.join("\n  ")
    );
    assert!(
        gone.is_empty(),
        "known violations that no longer happen; remove them from KNOWN_VIOLATIONS:\n  {}",
        gone.join("\n  ")
    );
}

/// The import graph, for the record (`-- --nocapture` prints it).
#[test]
fn print_the_import_graph() {
    let scan = scan(&src_dir());
    let g = graph(&scan);
    let mut importers_of_cli: BTreeSet<&str> = BTreeSet::new();
    println!("import graph of racegate-cli (from -> to: references)");
    for ((from, to), n) in &g {
        println!("  {from} -> {to}: {n}");
        if to == "cli" {
            importers_of_cli.insert(from);
        }
    }
    println!("modules importing `cli`: {importers_of_cli:?}");
    for r in scan
        .refs
        .iter()
        .filter(|r| r.to.is_empty() || top(&r.to).is_empty())
    {
        println!(
            "  root reference: {}:{} {:?}",
            r.file.display(),
            r.line,
            r.to
        );
    }
    println!(
        "process::exit: {:?}",
        scan.exits
            .iter()
            .map(|(f, l)| format!("{}:{l}", f.strip_prefix(src_dir()).unwrap_or(f).display()))
            .collect::<Vec<_>>()
    );
    assert!(!g.is_empty(), "the scan found no import at all");
}

/// The resolver itself: `super` chains, inline modules, `use` groups and macro tokens.
#[test]
fn resolver_reads_paths_like_rustc() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a; pub mod b;").unwrap();
    std::fs::write(
        src.join("a/mod.rs"),
        "use crate::b::{X, c::{self, Y}};\n\
         mod inner { use super::super::b::Z; fn f() { println!(\"{}\", crate::b::w()); } }\n\
         fn g() { std::process::exit(1); let _ = self::inner::Q; }\n",
    )
    .unwrap();
    std::fs::write(src.join("b.rs"), "pub struct X;").unwrap();
    let scan = scan(src);
    let refs: BTreeSet<String> = scan
        .refs
        .iter()
        .map(|r| format!("{} -> {}", r.from.join("::"), r.to.join("::")))
        .collect();
    for want in [
        "a -> b::X",
        "a -> b::c",
        "a -> b::c::Y",
        "a::inner -> b::Z",
        "a::inner -> b::w",
        "a -> a::inner::Q",
    ] {
        assert!(refs.contains(want), "missing `{want}` in {refs:#?}");
    }
    assert_eq!(scan.exits.len(), 1);
    let g = graph(&scan);
    assert_eq!(g.get(&("a".into(), "b".into())), Some(&5), "{g:?}");
}
