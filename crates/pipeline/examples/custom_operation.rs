//! A pipeline operation written in Rust: `mask_email` registered as a plugin, named in
//! YAML like a built-in, run against a Kafka-compatible cluster.
//!
//! ```text
//! strom serve &                     # or any Kafka cluster
//! cargo run -p strom-pipeline --features runtime --example custom_operation -- 127.0.0.1:9092
//! kcat -b 127.0.0.1:9092 -P -t signups -k u1 <<< '{"email": "ada@example.com"}'
//! kcat -b 127.0.0.1:9092 -C -t signups-masked -e   # {"email":"***@example.com"}
//! ```

use serde_json::Value as Json;
use strom_pipeline::builtins::RecordFn;
use strom_pipeline::plugin::{OperationPlugin, Plugins};
use strom_pipeline::run::{start, RunOptions};
use strom_pipeline::Value;

const PIPELINE: &str = r#"
pipeline:
  name: signups-privacy
  input_topics: [signups]
  processors:
    - name: privacy
      operations:
        - mask_email: {field: email}
  output_sinks:
    - type: kafka
      topic: signups-masked
"#;

/// Replaces the local part of an e-mail address with `***`; a record without one goes to
/// the dead-letter topic.
struct MaskEmail;

impl OperationPlugin for MaskEmail {
    fn name(&self) -> &str {
        "mask_email"
    }

    fn build(&self, params: &[(String, Value)]) -> Result<RecordFn, String> {
        let field = params
            .iter()
            .find(|(k, _)| k == "field")
            .and_then(|(_, v)| v.as_text())
            .unwrap_or("email")
            .to_string();
        Ok(Box::new(move |key, mut value: Json| {
            let masked = match value.get(&field).and_then(Json::as_str) {
                Some(email) => match email.split_once('@') {
                    Some((_, domain)) => format!("***@{domain}"),
                    None => return Err(format!("{email:?} is not an e-mail address")),
                },
                None => return Err(format!("no {field} field")),
            };
            value[field.as_str()] = Json::String(masked);
            Ok(Some((key, value)))
        }))
    }
}

fn main() -> Result<(), String> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let plugins = Plugins::new().register(MaskEmail);
    let pipeline = strom_pipeline::parse_with("inline.yaml", PIPELINE, &|_| None, &plugins.names())
        .map_err(|d| d.to_string())?;
    let options = RunOptions {
        bootstrap_servers: bootstrap,
        state_dir: std::env::temp_dir().join("strom-custom-operation"),
        threads: 1,
        http_addr: None,
        plugins,
    };
    let running = start("inline.yaml", &pipeline, &options, &|k| {
        std::env::var(k).ok()
    })?;
    println!("masking signups → signups-masked; Enter stops");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        // Stops on end of input (Ctrl-D) as well.
        let _ = std::io::stdin().read_line(&mut line);
        let _ = tx.send(());
    });
    let _ = rx.recv();
    running.close()
}
