//! Through the test driver: a processor that keeps its own windows reports late records
//! exactly as the built-in windowed operators do (`ProcessorContext::report_late`), and
//! an unbounded stream–stream join (`JoinWindows::unbounded`) pairs records however far
//! apart they are, in either order, without ever calling one late.
#![allow(clippy::unwrap_used)]

use strom_streams::prelude::*;

const DLQ: &str = "dlq";

fn driver(b: &StreamsBuilder) -> TopologyTestDriver {
    let config = DriverConfig {
        processing_errors: ErrorHandler::DeadLetter { topic: DLQ.into() },
        ..DriverConfig::default()
    };
    TopologyTestDriver::with_config(&b.build().unwrap(), config).unwrap()
}

/// Counts records per key and 100 ms window; a window closes when stream time reaches
/// its end (grace 0), and a record for a closed window is reported late.
struct OwnWindows {
    counts: StoreHandle<String, i64>,
}

impl Processor<String, String, String, i64> for OwnWindows {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, i64>,
        r: Record<String, String>,
    ) -> Result<(), ProcessError> {
        let start = r.timestamp_ms - r.timestamp_ms.rem_euclid(100);
        let window = Window {
            start_ms: start,
            end_ms: start + 100,
        };
        if ctx.stream_time_ms() >= window.end_ms {
            let late = LateRecord {
                key: Some(r.key.clone().into_bytes()),
                value: Some(r.value.clone().into_bytes()),
                timestamp_ms: r.timestamp_ms,
                headers: r.headers.clone(),
            };
            ctx.report_late(late, window, window.end_ms);
            return Ok(());
        }
        let key = format!("{}@{start}", r.key);
        let mut store = ctx.store(&self.counts)?;
        let n = store.get(&key)?.unwrap_or(0) + 1;
        store.put(&key, &n)?;
        ctx.forward(Record::new(key, n, r.timestamp_ms));
        Ok(())
    }
}

fn header<'a>(r: &'a Record<String, String>, name: &str) -> &'a str {
    let (_, v) = r.headers.iter().find(|(k, _)| k == name).unwrap();
    std::str::from_utf8(v.as_deref().unwrap()).unwrap()
}

#[test]
fn a_processor_reports_a_record_for_its_closed_window_to_the_dead_letter_topic() {
    let b = StreamsBuilder::new();
    let counts = StoreHandle::new("own-windows", StringSerde, I64Serde);
    b.add_store(&counts);
    let handle = counts.clone();
    b.stream("in", StringSerde, StringSerde)
        .process(
            move || OwnWindows {
                counts: handle.clone(),
            },
            &[counts.name()],
        )
        .to("out", StringSerde, I64Serde);
    let mut d = driver(&b);
    let (k, v) = ("k".to_string(), "v".to_string());
    for ts in [10, 20, 130, 50, 99, 100] {
        d.pipe("in", &StringSerde, &StringSerde, &k, &v, ts)
            .unwrap();
    }
    let out: Vec<(String, i64)> = d
        .read_output("out", &StringSerde, &I64Serde)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    let row = |k: &str, n| (k.to_string(), n);
    assert_eq!(
        out,
        vec![
            row("k@0", 1),
            row("k@0", 2),
            row("k@100", 1),
            row("k@100", 2)
        ]
    );
    let dlq = d.read_output(DLQ, &StringSerde, &StringSerde).unwrap();
    let late: Vec<(i64, &str, &str, &str)> = dlq
        .iter()
        .map(|r| {
            (
                r.timestamp_ms,
                header(r, "strom.error.kind"),
                header(r, "strom.window.start"),
                header(r, "strom.lateness.ms"),
            )
        })
        .collect();
    // Stream time is 130 when 50 and 99 arrive: their window [0, 100) closed at 100.
    assert_eq!(late, vec![(50, "late", "0", "30"), (99, "late", "0", "30")]);
    assert_eq!(header(&dlq[0], "strom.window.end"), "100");
    assert_eq!(header(&dlq[0], "strom.stream.time"), "130");
    assert_eq!(header(&dlq[0], "strom.original.topic"), "in");
    assert_eq!(header(&dlq[1], "strom.original.offset"), "4");
    assert_eq!((dlq[0].key.as_str(), dlq[0].value.as_str()), ("k", "v"));
}

#[test]
fn an_unbounded_join_pairs_records_years_apart_in_either_order() {
    let b = StreamsBuilder::new();
    let left = b.stream("left", StringSerde, StringSerde);
    let right = b.stream("right", StringSerde, StringSerde);
    left.join(
        &right,
        |l: &String, r: &String| format!("{l}+{r}"),
        JoinWindows::unbounded(),
        StreamJoined::with("forever", StringSerde, StringSerde, StringSerde),
    )
    .to("out", StringSerde, StringSerde);
    let mut d = driver(&b);
    let pipe = |d: &mut TopologyTestDriver, topic: &str, k: &str, v: &str, ts: i64| {
        d.pipe(topic, &StringSerde, &StringSerde, &k.into(), &v.into(), ts)
            .unwrap()
    };
    const YEAR_MS: i64 = 365 * 86_400_000;
    pipe(&mut d, "left", "a", "l1", 5 * YEAR_MS);
    pipe(&mut d, "right", "b", "r0", 10 * YEAR_MS);
    // Five years behind stream time, and still not late: it joins the earlier left record.
    pipe(&mut d, "right", "a", "r1", 0);
    pipe(&mut d, "left", "b", "l2", 1);
    pipe(&mut d, "left", "a", "l3", 20 * YEAR_MS);
    let out: Vec<(String, String, i64)> = d
        .read_output("out", &StringSerde, &StringSerde)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp_ms))
        .collect();
    let row = |k: &str, v: &str, ts: i64| (k.to_string(), v.to_string(), ts);
    assert_eq!(
        out,
        vec![
            row("a", "l1+r1", 5 * YEAR_MS),
            row("b", "l2+r0", 10 * YEAR_MS),
            row("a", "l3+r1", 20 * YEAR_MS),
        ]
    );
    assert!(d.read_raw(DLQ).is_empty());
}
