// Creates a compacted topic with KafkaJS's admin client and fills it with keyed
// updates and tombstones (value null); test_compaction.py checks what the log
// cleaner leaves. Env: STROM_BOOTSTRAP, TOPIC, KEYS, UPDATES, TOMBSTONES, SEGMENT_MS.
'use strict';

const { Kafka, logLevel } = require('kafkajs');

async function main() {
  const kafka = new Kafka({
    clientId: 'strom-compat-compaction',
    brokers: [process.env.STROM_BOOTSTRAP],
    logLevel: logLevel.NOTHING,
  });
  const topic = process.env.TOPIC;
  const keys = Number(process.env.KEYS);
  const updates = Number(process.env.UPDATES);
  const tombstones = Number(process.env.TOMBSTONES);
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{
      topic,
      numPartitions: 1,
      configEntries: [
        { name: 'cleanup.policy', value: 'compact' },
        { name: 'segment.bytes', value: '131072' },
        { name: 'segment.ms', value: process.env.SEGMENT_MS },
        { name: 'min.cleanable.dirty.ratio', value: '0.01' },
        { name: 'delete.retention.ms', value: '0' },
      ],
    }],
  });
  await admin.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  for (let round = 0; round < updates; round++) {
    const messages = [];
    for (let k = 0; k < keys; k++) {
      messages.push({ key: `key-${k}`, value: `value-${k}-${round}` });
    }
    await producer.send({ topic, acks: -1, messages });
  }
  const deletes = [];
  for (let k = 0; k < tombstones; k++) {
    deletes.push({ key: `key-${k}`, value: null });
  }
  await producer.send({ topic, acks: -1, messages: deletes });
  await producer.disconnect();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
