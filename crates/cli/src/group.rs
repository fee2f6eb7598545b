//! `strom group list|describe|reset-offsets|delete`.
//!
//! Members and assignments come from ListGroups/DescribeGroups (librdkafka's group
//! list), committed offsets from OffsetFetch, end offsets from ListOffsets. A reset
//! commits new offsets with OffsetCommit outside any generation, which a broker accepts
//! only while the group has no members: the group must be empty.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use bytes::{Buf, Bytes};
use clap::{ArgGroup, Args, Subcommand};
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::groups::GroupInfo;
use rdkafka::{Offset, TopicPartitionList};

use crate::client::{block_on, partitions_of, print_deleted, topic_names, Connection};
use crate::table::Table;

/// `strom group …`: inspect and manage consumer groups.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  strom group list
  strom group describe audit
  strom group reset-offsets audit --topic events --to-earliest            # prints the plan
  strom group reset-offsets audit --topic events --to-earliest --execute  # applies it
  strom group reset-offsets audit --all-topics --to-timestamp 1700000000000 --execute
  strom group delete audit")]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List groups with their state and member count.
    List,
    /// Show members, assignments, committed and end offsets, and lag per partition.
    Describe {
        /// Group id.
        group: String,
    },
    /// Move an empty group's committed offsets; prints the plan unless --execute.
    #[command(group(ArgGroup::new("target").required(true)
        .args(["to_earliest", "to_latest", "to_offset", "to_timestamp"])))]
    #[command(group(ArgGroup::new("scope").required(true).args(["topic", "all_topics"])))]
    ResetOffsets {
        /// Group id.
        group: String,
        /// Reset this topic's partitions (repeatable).
        #[arg(long)]
        topic: Vec<String>,
        /// Reset every topic the group has committed offsets for.
        #[arg(long)]
        all_topics: bool,
        /// To the log start offset.
        #[arg(long)]
        to_earliest: bool,
        /// To the end (high watermark).
        #[arg(long)]
        to_latest: bool,
        /// To this offset (clamped to the partition's start and end).
        #[arg(long, value_name = "OFFSET")]
        to_offset: Option<i64>,
        /// To the first record at or after this time, in ms since the epoch (the end
        /// where there is none).
        #[arg(long, value_name = "MS")]
        to_timestamp: Option<i64>,
        /// Apply the plan (without it, only print it).
        #[arg(long)]
        execute: bool,
        /// Only print the plan (the default; for scripts that want to say so).
        #[arg(long, conflicts_with = "execute")]
        dry_run: bool,
    },
    /// Delete groups and their committed offsets (they must be empty).
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

/// Runs a `strom group` command.
pub fn run(args: GroupArgs) -> anyhow::Result<()> {
    let connection = &args.connection;
    match args.command {
        GroupCommand::List => list(connection),
        GroupCommand::Describe { group } => describe(connection, &group),
        GroupCommand::ResetOffsets {
            group,
            topic,
            all_topics,
            to_earliest,
            to_latest,
            to_offset,
            to_timestamp,
            execute,
            dry_run: _,
        } => {
            let target = match (to_earliest, to_latest, to_offset, to_timestamp) {
                (true, ..) => Target::Earliest,
                (_, true, ..) => Target::Latest,
                (_, _, Some(offset), _) => Target::Offset(offset),
                (_, _, _, Some(ms)) => Target::Timestamp(ms),
                _ => bail!("give one of --to-earliest, --to-latest, --to-offset, --to-timestamp"),
            };
            let topics = (!all_topics).then_some(topic);
            reset_offsets(connection, &group, topics, target, execute)
        }
        GroupCommand::Delete { groups } => delete(connection, &groups),
    }
}

fn list(connection: &Connection) -> anyhow::Result<()> {
    let consumer = connection.consumer(None, &[])?;
    let groups = consumer
        .fetch_group_list(None, connection.timeout())
        .context("cannot list groups")?;
    let mut rows: Vec<&GroupInfo> = groups.groups().iter().collect();
    rows.sort_by(|a, b| a.name().cmp(b.name()));
    let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL", "MEMBERS"]);
    for group in rows {
        table.row(vec![
            group.name().to_owned(),
            group.state().to_owned(),
            dash_if_empty(group.protocol()),
            group.members().len().to_string(),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

/// One group's membership, as DescribeGroups tells it.
struct Membership {
    state: String,
    protocol: String,
    members: Vec<Member>,
}

/// One member of a group.
struct Member {
    id: String,
    client_id: String,
    host: String,
    /// The (topic, partition)s assigned to it.
    assigned: Vec<(String, i32)>,
}

fn membership(
    connection: &Connection,
    consumer: &BaseConsumer,
    group: &str,
) -> anyhow::Result<Membership> {
    let list = consumer
        .fetch_group_list(Some(group), connection.timeout())
        .with_context(|| format!("cannot describe group {group}"))?;
    let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
        return Ok(Membership {
            state: "Dead".to_owned(),
            protocol: String::new(),
            members: Vec::new(),
        });
    };
    let members = info
        .members()
        .iter()
        .map(|m| Member {
            id: m.id().to_owned(),
            client_id: m.client_id().to_owned(),
            host: m.client_host().to_owned(),
            assigned: m.assignment().map(parse_assignment).unwrap_or_default(),
        })
        .collect();
    Ok(Membership {
        state: info.state().to_owned(),
        protocol: info.protocol().to_owned(),
        members,
    })
}

/// The (topic, partition)s of a consumer-protocol assignment; empty when the bytes are
/// not one (another protocol type, or a member that has no assignment yet).
fn parse_assignment(bytes: &[u8]) -> Vec<(String, i32)> {
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16();
    // Versions above 3 are read as 3: later versions only append fields.
    let Ok(assignment) = ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) else {
        return Vec::new();
    };
    assignment
        .assigned_partitions
        .into_iter()
        .flat_map(|t| {
            let topic = t.topic.0.to_string();
            t.partitions.into_iter().map(move |p| (topic.clone(), p))
        })
        .collect()
}

/// Committed offsets of `group` on every partition of `topics` that has one.
fn committed(
    connection: &Connection,
    consumer: &BaseConsumer,
    topics: &[String],
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let metadata = connection.metadata(consumer, None)?;
    let mut list = TopicPartitionList::new();
    for topic in topics {
        for partition in partitions_of(&metadata, topic) {
            list.add_partition(topic, partition);
        }
    }
    if list.count() == 0 {
        return Ok(BTreeMap::new());
    }
    let list = consumer
        .committed_offsets(list, connection.timeout())
        .context("cannot read committed offsets")?;
    Ok(list
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some(((e.topic().to_owned(), e.partition()), offset)),
            _ => None,
        })
        .collect())
}

fn describe(connection: &Connection, group: &str) -> anyhow::Result<()> {
    let consumer = connection.consumer(Some(group), &[])?;
    let membership = membership(connection, &consumer, group)?;
    let metadata = connection.metadata(&consumer, None)?;
    let offsets = committed(connection, &consumer, &topic_names(&metadata))?;
    if membership.state == "Dead" && offsets.is_empty() {
        bail!("group {group} does not exist");
    }
    println!(
        "group {group}: state {}, protocol {}, {} member(s)",
        membership.state,
        dash_if_empty(&membership.protocol),
        membership.members.len()
    );

    let mut owners: BTreeMap<(String, i32), &str> = BTreeMap::new();
    for member in &membership.members {
        for key in &member.assigned {
            owners.insert(key.clone(), &member.id);
        }
    }
    let mut partitions: Vec<(String, i32)> = offsets.keys().cloned().collect();
    partitions.extend(owners.keys().cloned());
    partitions.sort();
    partitions.dedup();

    let mut table = Table::new(&["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"]);
    for (topic, partition) in partitions {
        let (_, end) = consumer
            .fetch_watermarks(&topic, partition, connection.timeout())
            .with_context(|| format!("cannot read the end offset of {topic}/{partition}"))?;
        let key = (topic, partition);
        let committed = offsets.get(&key);
        table.row(vec![
            key.0.clone(),
            partition.to_string(),
            committed.map_or("-".to_owned(), i64::to_string),
            end.to_string(),
            committed.map_or("-".to_owned(), |c| (end - c).max(0).to_string()),
            owners.get(&key).map_or("-", |m| m).to_owned(),
        ]);
    }
    print!("{}", table.render());

    if !membership.members.is_empty() {
        println!();
        let mut table = Table::new(&["MEMBER", "CLIENT-ID", "HOST", "ASSIGNMENT"]);
        for member in &membership.members {
            let assigned: Vec<String> = member
                .assigned
                .iter()
                .map(|(t, p)| format!("{t}/{p}"))
                .collect();
            table.row(vec![
                member.id.clone(),
                member.client_id.clone(),
                member.host.clone(),
                dash_if_empty(&assigned.join(",")),
            ]);
        }
        print!("{}", table.render());
    }
    Ok(())
}

/// Where reset-offsets moves a group's offsets.
#[derive(Debug, Clone, Copy)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

fn reset_offsets(
    connection: &Connection,
    group: &str,
    topics: Option<Vec<String>>,
    target: Target,
    execute: bool,
) -> anyhow::Result<()> {
    let consumer = connection.consumer(Some(group), &[])?;
    let membership = membership(connection, &consumer, group)?;
    if !membership.members.is_empty() || !matches!(membership.state.as_str(), "Empty" | "Dead") {
        bail!(
            "group {group} is not empty (state {}, {} member(s)): stop its consumers before resetting offsets",
            membership.state,
            membership.members.len()
        );
    }
    let metadata = connection.metadata(&consumer, None)?;
    let current = match &topics {
        Some(topics) => committed(connection, &consumer, topics)?,
        None => committed(connection, &consumer, &topic_names(&metadata))?,
    };
    let topics = match topics {
        Some(topics) => topics,
        None => {
            let mut names: Vec<String> = current.keys().map(|(t, _)| t.clone()).collect();
            names.dedup();
            names
        }
    };
    if topics.is_empty() {
        bail!("group {group} has no committed offsets to reset");
    }

    let mut plan = TopicPartitionList::new();
    for topic in &topics {
        let partitions = partitions_of(&metadata, topic);
        if partitions.is_empty() {
            bail!("topic {topic} does not exist");
        }
        for partition in partitions {
            let (start, end) = consumer
                .fetch_watermarks(topic, partition, connection.timeout())
                .with_context(|| format!("cannot read the offsets of {topic}/{partition}"))?;
            let offset = match target {
                Target::Earliest => start,
                Target::Latest => end,
                Target::Offset(offset) => offset.clamp(start, end),
                Target::Timestamp(ms) => {
                    let mut query = TopicPartitionList::new();
                    query.add_partition_offset(topic, partition, Offset::Offset(ms))?;
                    let found = consumer
                        .offsets_for_times(query, connection.timeout())
                        .context("cannot look up offsets by timestamp")?;
                    match found.elements().first().map(|e| e.offset()) {
                        Some(Offset::Offset(offset)) => offset,
                        _ => end,
                    }
                }
            };
            plan.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        }
    }

    let mut table = Table::new(&["TOPIC", "PARTITION", "CURRENT", "NEW"]);
    for e in plan.elements() {
        let current = current.get(&(e.topic().to_owned(), e.partition()));
        table.row(vec![
            e.topic().to_owned(),
            e.partition().to_string(),
            current.map_or("-".to_owned(), i64::to_string),
            e.offset().to_raw().unwrap_or(-1).to_string(),
        ]);
    }
    println!("{}", table.render());
    if execute {
        match consumer.commit(&plan, CommitMode::Sync) {
            Ok(()) => {}
            // Members that DescribeGroups does not show (KIP-848 groups) make the
            // broker refuse a commit from outside the group.
            Err(KafkaError::ConsumerCommit(
                RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::StaleMemberEpoch,
            )) => bail!(
                "group {group} is not empty (the broker refused a commit from outside it): stop its consumers before resetting offsets"
            ),
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot commit the new offsets of group {group}"))
            }
        }
        println!("reset the offsets of group {group}");
    } else {
        println!("dry run: nothing changed; add --execute to apply");
    }
    Ok(())
}

fn delete(connection: &Connection, groups: &[String]) -> anyhow::Result<()> {
    let names: Vec<&str> = groups.iter().map(String::as_str).collect();
    let admin = connection.admin()?;
    print_deleted(
        "group",
        block_on(admin.delete_groups(&names, &connection.admin_options()))?,
    )
}

fn dash_if_empty(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encoded(version: i16) -> Vec<u8> {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            TopicPartition::default()
                .with_topic(TopicName(StrBytes::from_static_str("orders")))
                .with_partitions(vec![0, 2]),
            TopicPartition::default()
                .with_topic(TopicName(StrBytes::from_static_str("clicks")))
                .with_partitions(vec![1]),
        ]);
        let mut buf = bytes::BytesMut::new();
        buf.extend_from_slice(&version.to_be_bytes());
        assignment.encode(&mut buf, version).expect("encode");
        buf.to_vec()
    }

    #[test]
    fn assignments_of_every_version_parse() {
        for version in 0..=3 {
            assert_eq!(
                parse_assignment(&encoded(version)),
                vec![
                    ("orders".to_owned(), 0),
                    ("orders".to_owned(), 2),
                    ("clicks".to_owned(), 1)
                ],
                "version {version}"
            );
        }
    }

    #[test]
    fn garbage_is_no_assignment() {
        assert!(parse_assignment(&[]).is_empty());
        assert!(parse_assignment(&[0, 0, 0, 0, 0, 9]).is_empty());
    }
}
