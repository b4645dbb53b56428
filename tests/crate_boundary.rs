//! The shape of the code that the compiler does not check on its own: the unprivileged front
//! links nothing privileged, and no module imports a module that imports it back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The project's own crates each crate depends on (normal dependencies), from `cargo metadata`.
fn project_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(ROOT)
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let ours: BTreeSet<String> = packages.iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .filter(|n| ours.contains(n))
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

#[test]
fn the_front_links_nothing_privileged() {
    let deps = project_dependencies();
    let front = &deps["qemu-ga-rs"];
    assert!(!front.contains("qemu-ga-rs-helper"), "the front depends on the helper crate: {front:?}");
    // What the front links must not link the helper either.
    for dep in front {
        assert!(!deps[dep].contains("qemu-ga-rs-helper"), "{dep}, which the front links, depends on the helper");
    }
    assert!(front.contains("qemu-ga-rs-protocol"), "the front speaks the protocol crate: {front:?}");
}

#[test]
fn the_protocol_and_policy_crates_depend_on_nothing_privileged() {
    let deps = project_dependencies();
    assert_eq!(deps["qemu-ga-rs-policy"], BTreeSet::new());
    assert_eq!(deps["qemu-ga-rs-protocol"], BTreeSet::from(["qemu-ga-rs-policy".to_owned()]));
}

/// Every module of a crate (by its path below `src/`, `a::b`) and the file that holds it.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    files
        .into_iter()
        .map(|file| {
            let rel = file.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                parts.pop();
            }
            (parts.join("::"), file)
        })
        .collect()
}

/// The modules a file names through `crate::` paths (comments left out); a module's own
/// ancestors and descendants do not count (a parent declares its children).
fn imports(module: &str, file: &Path, all: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let text: String = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let related = |other: &str| {
        other == module
            || module.starts_with(&format!("{other}::"))
            || other.starts_with(&format!("{module}::"))
            || module.is_empty()
    };
    let mut found = BTreeSet::new();
    let mut consider = |path: &str| {
        let parts: Vec<&str> = path.split("::").collect();
        for k in (1..=parts.len()).rev() {
            let candidate = parts[..k].join("::");
            if all.contains_key(&candidate) {
                if !related(&candidate) {
                    found.insert(candidate);
                }
                break;
            }
        }
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::X, b}`: each item's path.
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                consider(item.trim());
            }
        } else {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            consider(rest[..end].trim_end_matches(':'));
        }
    }
    found
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let mut cycles = Vec::new();
    for src in ["src", "helper/src", "policy/src", "protocol/src"] {
        let all = modules(&Path::new(ROOT).join(src));
        let graph: BTreeMap<&String, BTreeSet<String>> = all.iter().map(|(m, f)| (m, imports(m, f, &all))).collect();
        // Any cycle, not just pairs: a depth-first search per module.
        for start in graph.keys() {
            let mut stack: Vec<(String, Vec<String>)> = vec![((*start).clone(), vec![(*start).clone()])];
            let mut seen = BTreeSet::new();
            while let Some((node, path)) = stack.pop() {
                for next in &graph[&node] {
                    if next == *start {
                        cycles.push(format!("{src}: {} -> {start}", path.join(" -> ")));
                    } else if seen.insert(next.clone()) {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push((next.clone(), p));
                    }
                }
            }
        }
    }
    assert!(cycles.is_empty(), "module import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_finder_sees_a_cycle() {
    let dir = std::env::temp_dir().join(format!("qga-cycles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.rs"), "use crate::b::B;\n").unwrap();
    std::fs::write(dir.join("b.rs"), "use crate::{a::A, c};\n").unwrap();
    std::fs::write(dir.join("c.rs"), "// use crate::a;\n").unwrap();
    let all = modules(&dir);
    assert_eq!(imports("a", &all["a"], &all), BTreeSet::from(["b".to_owned()]));
    assert_eq!(imports("b", &all["b"], &all), BTreeSet::from(["a".to_owned(), "c".to_owned()]));
    assert_eq!(imports("c", &all["c"], &all), BTreeSet::new());
    std::fs::remove_dir_all(&dir).unwrap();
}
