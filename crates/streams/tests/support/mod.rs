//! End-to-end harness: `strom serve` as a child process on ephemeral ports, and small
//! rdkafka helpers to create topics, produce inputs and read outputs with read_committed.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// The strom binary: `STROM_BIN`, else the workspace's `target/debug/strom` (built with
/// `cargo build -p strom --no-default-features` when missing).
pub fn strom_bin() -> PathBuf {
    if let Ok(p) = std::env::var("STROM_BIN") {
        return PathBuf::from(p);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = workspace.join("target/debug/strom");
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "strom", "--no-default-features"])
            .current_dir(&workspace)
            .status()
            .expect("cargo build strom");
        assert!(status.success(), "building strom failed");
    }
    bin
}

/// Logs of the library to stderr (`RUST_LOG`, default warn).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// A running `strom serve`; killed on drop.
pub struct Broker {
    child: Child,
    pub bootstrap: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn_broker(dir: &Path) -> Broker {
    init_logs();
    let mut child = Command::new(strom_bin())
        .args([
            "serve",
            "--kafka-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            // Tests run in parallel: no registry on its fixed default port.
            "--schema-registry-enabled",
            "false",
            "--data-dir",
        ])
        .arg(dir)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn strom");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let bootstrap = loop {
        let line = lines
            .next()
            .expect("strom exited before serving")
            .expect("read stderr");
        if let Some((_, rest)) = line.split_once("kafka_addr=") {
            break rest.split_whitespace().next().expect("address").to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Broker { child, bootstrap }
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Creates a topic; returns the broker's error code name on failure.
pub fn create_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    config: &[(&str, &str)],
) -> Result<(), String> {
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in config {
        t = t.set(k, v);
    }
    let r = block_on(admin(bootstrap).create_topics(&[t], &AdminOptions::new())).unwrap();
    match r.into_iter().next().unwrap() {
        Ok(_) => Ok(()),
        Err((_, code)) => Err(format!("{code:?}")),
    }
}

/// Deletes a topic (panics when the broker refuses).
pub fn delete_topic(bootstrap: &str, name: &str) {
    let r = block_on(admin(bootstrap).delete_topics(&[name], &AdminOptions::new())).unwrap();
    assert!(r.iter().all(Result::is_ok), "delete {name}: {r:?}");
}

pub fn producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

pub fn produce(p: &BaseProducer, topic: &str, records: &[(String, String)]) {
    for (k, v) in records {
        let mut rec = BaseRecord::to(topic)
            .key(k.as_bytes())
            .payload(v.as_bytes());
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(_), r)) => {
                    rec = r;
                    p.poll(Duration::from_millis(20));
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// (partition, offset, key, value) of a consumed record.
pub type Consumed = (i32, i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// A consumed record with its headers.
#[derive(Debug, Clone)]
pub struct ConsumedRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl ConsumedRecord {
    /// The last value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// Every committed record of `topic` (all partitions), read with read_committed.
pub fn read_committed(bootstrap: &str, topic: &str) -> Vec<Consumed> {
    read_committed_records(bootstrap, topic)
        .into_iter()
        .map(|r| (r.partition, r.offset, r.key, r.value))
        .collect()
}

/// The partition count of `topic` (`None` when it does not exist).
pub fn partition_count(bootstrap: &str, topic: &str) -> Option<usize> {
    let md = admin(bootstrap)
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .ok()?;
    md.topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
}

/// As [`read_committed`], with headers.
pub fn read_committed_records(bootstrap: &str, topic: &str) -> Vec<ConsumedRecord> {
    use rdkafka::message::Headers as _;
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "e2e-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = md.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut eof = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (eof.len() as i32) < partitions {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(ConsumedRecord {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            Some(Err(e)) => panic!("read {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// The latest value per key of a table topic whose values are JSON `[count, sum]`.
pub fn latest_counts(bootstrap: &str, topic: &str) -> BTreeMap<String, (i64, i64)> {
    let mut out = BTreeMap::new();
    for (_, _, k, v) in read_committed(bootstrap, topic) {
        let k = String::from_utf8(k.unwrap()).unwrap();
        let v: (i64, i64) = serde_json::from_slice(&v.unwrap()).unwrap();
        out.insert(k, v);
    }
    out
}

/// Waits until `done` holds for the latest counts, or the deadline; returns the last read.
pub fn wait_for_counts(
    bootstrap: &str,
    topic: &str,
    deadline: Duration,
    done: impl Fn(&BTreeMap<String, (i64, i64)>) -> bool,
) -> BTreeMap<String, (i64, i64)> {
    let end = Instant::now() + deadline;
    loop {
        let counts = latest_counts(bootstrap, topic);
        if done(&counts) || Instant::now() > end {
            return counts;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A single-node Apache Kafka (KRaft) from the jars `tests/compat/install.sh` fetches
/// from Maven Central (or `STROM_STREAMS_KAFKA_LIBS`); killed on drop.
pub struct Kafka {
    child: Child,
    pub bootstrap: String,
}

impl Drop for Kafka {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn spawn_kafka(dir: &Path) -> Kafka {
    init_logs();
    let libs = std::env::var("STROM_STREAMS_KAFKA_LIBS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/compat/kafka/target/dependency")
        });
    let present = std::fs::read_dir(&libs)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13-"))
        })
        .unwrap_or(false);
    assert!(
        present,
        "Apache Kafka jars missing in {}: run tests/compat/install.sh",
        libs.display()
    );
    let classpath = format!("{}/*", libs.display());
    let (port, controller) = (free_port(), free_port());
    std::fs::create_dir_all(dir).unwrap();
    let props = dir.join("server.properties");
    std::fs::write(
        &props,
        format!(
            "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.voters=1@127.0.0.1:{controller}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\ncontroller.listener.names=CONTROLLER\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\nlog.dirs={}\n\
             offsets.topic.replication.factor=1\ntransaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\ngroup.initial.rebalance.delay.ms=0\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let java = |args: &[&str]| {
        Command::new("java")
            .args(["-Xmx512m", "-cp", &classpath])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    };
    let status = java(&[
        "kafka.tools.StorageTool",
        "format",
        "-t",
        "c3Ryb20tc3RyZWFtcy10ZQ",
        "-c",
        props.to_str().unwrap(),
    ]);
    assert!(status.success(), "kafka storage format failed");
    let child = Command::new("java")
        .args([
            "-Xmx768m",
            "-cp",
            &classpath,
            "kafka.Kafka",
            props.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let bootstrap = format!("127.0.0.1:{port}");
    let kafka = Kafka { child, bootstrap };
    // Ready when a metadata request answers with this broker.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let admin = admin(&kafka.bootstrap);
        if admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(2))
            .is_ok_and(|m| !m.brokers().is_empty())
        {
            break;
        }
        assert!(Instant::now() < deadline, "Apache Kafka did not start");
        std::thread::sleep(Duration::from_millis(300));
    }
    kafka
}

/// A plain HTTP GET; returns the whole response (status line, headers, body).
pub fn http_get(addr: impl std::net::ToSocketAddrs, path: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).unwrap();
    out
}
