//! The `dashboard` key and the live views' HTTP routes: a page next to the pipeline file
//! is found or reported with its place; `/` serves it (or the built-in view), `/live.js`,
//! `/api/endpoints` and the files beside the page are served, nothing else is.
//! (The pages in a browser, against a running pipeline: the compat suite,
//! `tests/compat/python/test_pipeline_dashboard.py`.)
#![allow(clippy::unwrap_used)]

use strom_pipeline::dashboard::locate;
use strom_pipeline::parse;

const WITH_PAGE: &str = "\
pipeline:
  name: views
  input_topics: [views]
  dashboard: page.html
  output_sinks:
    - type: websocket
      endpoint: /counts
    - type: websocket
      for: top
      endpoint: counts
    - type: websocket
      for: late
    - type: kafka
      topic: out
";

fn without(key: &str, yaml: &str) -> String {
    yaml.lines()
        .filter(|l| !l.trim_start().starts_with(key))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn the_page_is_found_next_to_the_pipeline_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("page.html"), "<h1>views</h1>").unwrap();
    let file = dir.path().join("views.yaml");
    let file = file.to_str().unwrap();
    let p = parse(file, WITH_PAGE, &|_| None).unwrap();
    assert_eq!(p.dashboard.as_ref().unwrap().file, "page.html");
    let page = locate(file, &p).unwrap().unwrap();
    assert_eq!(page, dir.path().join("page.html"));
    // Without the key there is nothing to find.
    let p = parse(file, &without("dashboard", WITH_PAGE), &|_| None).unwrap();
    assert_eq!(p.dashboard, None);
    assert_eq!(locate(file, &p).unwrap(), None);
}

#[test]
fn a_missing_or_unreadable_page_is_reported_at_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("views.yaml");
    let file = file.to_str().unwrap();
    let p = parse(file, WITH_PAGE, &|_| None).unwrap();
    let e = locate(file, &p).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{file}:4:14: dashboard \"page.html\": cannot read "
        )),
        "{e}"
    );
    // A folder is not a page.
    std::fs::create_dir(dir.path().join("page.html")).unwrap();
    let e = locate(file, &p).unwrap_err().to_string();
    assert!(e.ends_with("page.html is not a file"), "{e}");
    // Nor is a file that is not text.
    std::fs::remove_dir(dir.path().join("page.html")).unwrap();
    std::fs::write(dir.path().join("page.html"), [0xff, 0xfe, 0x00]).unwrap();
    let e = locate(file, &p).unwrap_err().to_string();
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn the_key_must_name_a_file() {
    for (value, want) in [
        ("[a.html]", "p.yaml:4:14: dashboard must be a single value"),
        ("\"\"", "p.yaml:4:14: dashboard must name an HTML file"),
    ] {
        let yaml = WITH_PAGE.replace("page.html", value);
        let e = parse("p.yaml", &yaml, &|_| None).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e}");
    }
}

#[cfg(feature = "runtime")]
mod http {
    use super::*;
    use std::net::SocketAddr;

    use strom_pipeline::dashboard::routes::{Endpoint, Site};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A response: status, headers (names lower-cased) and body.
    struct Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Response {
        fn header(&self, name: &str) -> &str {
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map_or("", |(_, v)| v.as_str())
        }
    }

    /// `GET path` over HTTP/1.1 (the path sent exactly as given: no client tidies it).
    async fn get(addr: SocketAddr, path: &str) -> Response {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        Response {
            status: status.parse().unwrap(),
            headers,
            body: body.to_string(),
        }
    }

    async fn serve(site: Site) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router: axum::Router = site.router();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }

    #[tokio::test]
    async fn the_pipelines_page_and_its_files_are_served_at_root() {
        let dir = tempfile::tempdir().unwrap();
        let page = "<!doctype html><title>views</title><script src=\"/live.js\"></script>";
        std::fs::write(dir.path().join("page.html"), page).unwrap();
        std::fs::create_dir(dir.path().join("img")).unwrap();
        std::fs::write(dir.path().join("img/map.svg"), "<svg/>").unwrap();
        std::fs::write(dir.path().join("style.css"), "h1{}").unwrap();
        std::fs::write(dir.path().join(".secret.json"), "{}").unwrap();
        // A link inside the folder to a file outside it.
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("private.json"), "{}").unwrap();
        std::os::unix::fs::symlink(
            elsewhere.path().join("private.json"),
            dir.path().join("link.json"),
        )
        .unwrap();
        let file = dir.path().join("views.yaml");
        std::fs::write(&file, WITH_PAGE).unwrap();
        let file = file.to_str().unwrap();
        let p = parse(file, WITH_PAGE, &|_| None).unwrap();
        let addr = serve(Site::new(&p, locate(file, &p).unwrap())).await;

        let root = get(addr, "/").await;
        assert_eq!(root.status, 200);
        assert_eq!(root.header("content-type"), "text/html; charset=utf-8");
        assert_eq!(root.body, page);
        // Read at each request: an edited page shows on reload.
        std::fs::write(dir.path().join("page.html"), "<p>edited</p>").unwrap();
        assert_eq!(get(addr, "/").await.body, "<p>edited</p>");

        let svg = get(addr, "/dashboard/img/map.svg").await;
        assert_eq!((svg.status, svg.body.as_str()), (200, "<svg/>"));
        assert_eq!(svg.header("content-type"), "image/svg+xml");
        assert_eq!(get(addr, "/dashboard/style.css").await.body, "h1{}");
        for hidden in [
            "/dashboard/views.yaml",
            "/dashboard/.secret.json",
            "/dashboard/../views.yaml",
            "/dashboard/%2e%2e/views.yaml",
            "/dashboard/img/../../views.yaml",
            "/dashboard/missing.js",
            "/dashboard/img",
            "/dashboard/link.json",
        ] {
            assert_eq!(get(addr, hidden).await.status, 404, "{hidden}");
        }

        // The built-in view stays at /live, with the helper both use.
        let live = get(addr, "/live").await;
        assert!(live.body.contains("<script src=\"/live.js\"></script>"));
        let js = get(addr, "/live.js").await;
        assert_eq!(js.header("content-type"), "text/javascript; charset=utf-8");
        assert!(js.body.contains("global.strom = {"), "{}", js.body);
    }

    #[tokio::test]
    async fn without_a_page_root_is_the_built_in_view_and_endpoints_are_listed() {
        let yaml = without("dashboard", WITH_PAGE);
        let p = parse("views.yaml", &yaml, &|_| None).unwrap();
        let site = Site::new(&p, locate("views.yaml", &p).unwrap());
        // Outputs sharing an endpoint are listed under it, in file order.
        assert_eq!(
            site.endpoints(),
            [
                Endpoint {
                    path: "/counts".into(),
                    outputs: vec!["websocket-1".into(), "websocket-2".into()]
                },
                Endpoint {
                    path: "/late".into(),
                    outputs: vec!["websocket-3".into()]
                },
            ]
        );
        let addr = serve(site).await;
        let root = get(addr, "/").await;
        assert_eq!(root.status, 200);
        assert!(
            root.body.contains("<main id=\"endpoints\">"),
            "{}",
            root.body
        );
        assert_eq!(root.body, get(addr, "/live").await.body);
        // No page: nothing under /dashboard/.
        assert_eq!(get(addr, "/dashboard/page.html").await.status, 404);

        let api = get(addr, "/api/endpoints").await;
        assert_eq!(api.header("content-type"), "application/json");
        let json: serde_json::Value = serde_json::from_str(&api.body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "pipeline": "views",
                "endpoints": [
                    {"path": "/counts", "outputs": ["websocket-1", "websocket-2"]},
                    {"path": "/late", "outputs": ["websocket-3"]},
                ]
            })
        );
    }
}
