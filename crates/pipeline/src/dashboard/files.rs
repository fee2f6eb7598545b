//! Which files next to a `dashboard` page may be served, and as what.
//!
//! Invariants: a served path lies inside the page's folder (only plain names, no `..`,
//! no root, no hidden file or folder on the way) and has one of the web types below, so
//! a pipeline's YAML, credentials or dotfiles beside the page are never served.

use std::path::{Component, Path, PathBuf};

/// Extensions served and their content types.
const TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("json", "application/json"),
    ("geojson", "application/geo+json"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("ico", "image/x-icon"),
    ("woff2", "font/woff2"),
];

/// The content type of a file served by its extension, if it is one of the web types.
pub fn content_type(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    TYPES.iter().find(|(e, _)| *e == ext).map(|(_, t)| *t)
}

/// The file under `root` that the URL path `request` (what follows `/dashboard/`) names,
/// if it may be served: plain names only, none hidden, a web type.
pub fn resolve(root: &Path, request: &str) -> Option<PathBuf> {
    let relative = Path::new(request);
    let mut path = root.to_path_buf();
    let mut parts = 0;
    for c in relative.components() {
        match c {
            Component::Normal(name) if !name.to_str()?.starts_with('.') => {
                path.push(name);
                parts += 1;
            }
            _ => return None,
        }
    }
    (parts > 0 && content_type(&path).is_some()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_web_files_inside_the_folder_resolve() {
        let root = Path::new("/srv/page");
        assert_eq!(
            resolve(root, "app.js"),
            Some(PathBuf::from("/srv/page/app.js"))
        );
        assert_eq!(
            resolve(root, "img/city.SVG"),
            Some(PathBuf::from("/srv/page/img/city.SVG"))
        );
        assert_eq!(content_type(Path::new("a/city.SVG")), Some("image/svg+xml"));
    }

    #[test]
    fn escapes_hidden_files_and_other_types_are_refused() {
        let root = Path::new("/srv/page");
        for bad in [
            "",
            "../secret.json",
            "a/../../b.js",
            "/etc/passwd.json",
            ".env.json",
            ".git/config.js",
            "pipeline.yaml",
            "notes",
            "./app.js",
        ] {
            assert_eq!(resolve(root, bad), None, "{bad:?}");
        }
    }
}
