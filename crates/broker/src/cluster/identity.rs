//! The broker's identity, created once per data directory and kept in
//! `meta.properties` (Kafka's file name and format), so clients see the same node and
//! cluster ids across restarts.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use crate::error::StartError;

const FILE: &str = "meta.properties";

/// Node and cluster ids of this data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// Kafka's `node.id`.
    pub node_id: i32,
    /// Kafka's `cluster.id`: 22 characters of URL-safe base64, as Kafka generates.
    pub cluster_id: String,
}

impl Identity {
    /// Reads `meta.properties` from `data_dir`, creating it on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, StartError> {
        let path = data_dir.join(FILE);
        let bad = |reason: String| StartError::Identity {
            path: path.clone(),
            reason,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let props: HashMap<&str, &str> = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.trim(), v.trim()))
                    .collect();
                let node_id = props
                    .get("node.id")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("missing or invalid node.id".into()))?;
                let cluster_id = props
                    .get("cluster.id")
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| bad("missing cluster.id".into()))?
                    .to_string();
                Ok(Identity {
                    node_id,
                    cluster_id,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Identity {
                    node_id: 1,
                    cluster_id: base64_url(uuid::Uuid::new_v4().as_bytes()),
                };
                let tmp = data_dir.join(format!("{FILE}.tmp"));
                let text = format!(
                    "# written by strom on first start; do not edit\nversion=1\nnode.id={}\ncluster.id={}\n",
                    identity.node_id, identity.cluster_id
                );
                let write = || -> std::io::Result<()> {
                    let mut file = std::fs::File::create(&tmp)?;
                    file.write_all(text.as_bytes())?;
                    file.sync_all()?;
                    std::fs::rename(&tmp, &path)?;
                    std::fs::File::open(data_dir)?.sync_all()
                };
                write().map_err(|e| bad(e.to_string()))?;
                Ok(identity)
            }
            Err(e) => Err(bad(e.to_string())),
        }
    }
}

/// URL-safe base64 without padding (16 bytes → 22 characters).
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Identity::load_or_create(dir.path()).expect("create");
        assert_eq!(first.node_id, 1);
        assert_eq!(first.cluster_id.len(), 22);
        let again = Identity::load_or_create(dir.path()).expect("load");
        assert_eq!(first, again);
    }

    #[test]
    fn base64_url_matches_known_values() {
        assert_eq!(base64_url(b"\xfb\xff"), "-_8");
        assert_eq!(base64_url(b"Man"), "TWFu");
        assert_eq!(base64_url(&[0u8; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE), "node.id=x\n").expect("write");
        let err = Identity::load_or_create(dir.path()).expect_err("must fail");
        assert!(err.to_string().contains("node.id"), "{err}");
    }
}
