// KafkaJS 2.2.4 against strom. Run by tests/compat/python/test_kafkajs.py,
// which starts the broker and passes:
//   STROM_BOOTSTRAP  host:port of the broker
//   STROM_COMPAT_OUT file to write what was produced (JSON), so that the
//                    Python side reads it back with another client (KafkaJS
//                    has no group-less consumer) before and after restarts.
'use strict'

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const {
  Kafka,
  logLevel,
  CompressionTypes,
  CompressionCodecs,
  ConfigResourceTypes,
  Partitioners,
} = require('kafkajs')
const { registerCodecs } = require('./codecs')

registerCodecs(CompressionCodecs, CompressionTypes)

const BOOTSTRAP = process.env.STROM_BOOTSTRAP
const OUT = process.env.STROM_COMPAT_OUT
if (!BOOTSTRAP) throw new Error('STROM_BOOTSTRAP is not set (run through test_kafkajs.py)')
const [HOST, PORT] = [BOOTSTRAP.split(':')[0], Number(BOOTSTRAP.split(':')[1])]

const kafka = new Kafka({
  clientId: 'strom-compat-kafkajs',
  brokers: [BOOTSTRAP],
  logLevel: logLevel.NOTHING,
  connectionTimeout: 10000,
  requestTimeout: 30000,
  retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
})

const DEFAULT_SOURCE = 5 // DescribeConfigs config_source DEFAULT_CONFIG
const TOPIC_CONFIG_SOURCE = 1 // DYNAMIC_TOPIC_CONFIG

const produced = [] // {topic, codec, records: [{partition, offset, key, value, headers, timestamp}]}
const expectations = {} // extra facts for the Python side

const unique = prefix => `${prefix}-${crypto.randomBytes(5).toString('hex')}`

let admin
let producer

test.before(async () => {
  admin = kafka.admin()
  await admin.connect()
  producer = kafka.producer({
    idempotent: false,
    allowAutoTopicCreation: true,
    createPartitioner: Partitioners.DefaultPartitioner,
  })
  await producer.connect()
})

test.after(async () => {
  if (producer) await producer.disconnect()
  if (admin) await admin.disconnect()
  if (OUT) fs.writeFileSync(OUT, JSON.stringify({ produced, expectations }, null, 1))
})

// Every `type` (protocol error name) in an error and what it wraps.
function errorTypes(e, seen = new Set()) {
  if (!e || typeof e !== 'object' || seen.has(e)) return []
  seen.add(e)
  const out = e.type ? [e.type] : []
  for (const inner of [e.cause, e.originalError, ...(Array.isArray(e.errors) ? e.errors : [])]) {
    out.push(...errorTypes(inner, seen))
  }
  return out
}

function rejectsWith(type) {
  return e => {
    const types = errorTypes(e)
    assert.ok(types.includes(type), `expected ${type}, got ${e.name}: ${e.message} [${types}]`)
    return true
  }
}

async function createTopic(topic, numPartitions = 1, configEntries = []) {
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions, replicationFactor: 1, configEntries }],
    waitForLeaders: true,
    timeout: 10000,
  })
  assert.equal(created, true, `createTopics(${topic}) returned ${created}`)
}

async function topicConfigs(topic) {
  const res = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
    includeSynonyms: false,
  })
  assert.equal(res.resources.length, 1)
  const r = res.resources[0]
  assert.equal(r.errorCode, 0, r.errorMessage)
  return Object.fromEntries(r.configEntries.map(e => [e.configName, e]))
}

async function listTopicNames() {
  return new Set(await admin.listTopics())
}

function record(partition, result, m) {
  return {
    partition,
    offset: Number(result.baseOffset),
    key: m.key == null ? null : String(m.key),
    value: m.value == null ? null : String(m.value),
    headers: Object.entries(m.headers || {}).map(([k, v]) => [k, String(v)]),
    timestamp: m.timestamp == null ? null : Number(m.timestamp),
  }
}

// Sends messages one partition per call so each result's baseOffset maps
// to the first message; returns records with their offsets.
async function sendToPartition(topic, partition, messages, opts = {}) {
  const res = await producer.send({
    topic,
    messages: messages.map(m => ({ ...m, partition })),
    acks: -1,
    ...opts,
  })
  assert.equal(res.length, 1)
  const r = res[0]
  assert.equal(r.errorCode, 0)
  assert.equal(r.partition, partition)
  return { result: r, records: messages.map((m, i) => record(partition, { baseOffset: Number(r.baseOffset) + i }, m)) }
}

test('describeCluster: one broker at the bootstrap address, it is the controller', async () => {
  const c = await admin.describeCluster()
  assert.equal(c.brokers.length, 1)
  assert.equal(c.brokers[0].host, HOST)
  assert.equal(c.brokers[0].port, PORT)
  assert.equal(c.controller, c.brokers[0].nodeId)
  assert.ok(c.clusterId, 'clusterId missing')
  expectations.nodeId = c.brokers[0].nodeId
})

test('createTopics, fetchTopicMetadata, duplicate and validateOnly', async () => {
  const topic = unique('kjs-create')
  await createTopic(topic, 3)
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  assert.equal(md.topics.length, 1)
  const parts = md.topics[0].partitions.sort((a, b) => a.partitionId - b.partitionId)
  assert.deepEqual(parts.map(p => p.partitionId), [0, 1, 2])
  const c = await admin.describeCluster()
  for (const p of parts) {
    assert.equal(p.partitionErrorCode, 0)
    assert.equal(p.leader, c.brokers[0].nodeId)
    assert.deepEqual(p.replicas, [c.brokers[0].nodeId])
    assert.deepEqual(p.isr, [c.brokers[0].nodeId])
  }
  assert.ok((await listTopicNames()).has(topic))

  // Creating it again: KafkaJS maps TOPIC_ALREADY_EXISTS to `false`.
  const again = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: false })
  assert.equal(again, false)

  // validateOnly does not create (waitForLeaders would auto-create via metadata).
  const vtopic = unique('kjs-validate')
  await admin.createTopics({ topics: [{ topic: vtopic, numPartitions: 2 }], validateOnly: true, waitForLeaders: false })
  assert.ok(!(await listTopicNames()).has(vtopic), 'validateOnly created the topic')
})

test('createTopics with an invalid name fails with INVALID_TOPIC_EXCEPTION', async () => {
  for (const name of ['bad name', 'a/b', '..', 'z'.repeat(250)]) {
    await assert.rejects(
      admin.createTopics({ topics: [{ topic: name, numPartitions: 1 }], waitForLeaders: false }),
      rejectsWith('INVALID_TOPIC_EXCEPTION'),
      name
    )
    assert.ok(!(await listTopicNames()).has(name))
  }
})

test('auto topic creation by producing', async () => {
  const topic = unique('kjs-auto')
  assert.ok(!(await listTopicNames()).has(topic))
  const res = await producer.send({ topic, messages: [{ value: 'auto-1' }, { value: 'auto-2' }] })
  assert.equal(res.length, 1)
  assert.equal(res[0].partition, 0)
  assert.equal(Number(res[0].baseOffset), 0)
  assert.ok((await listTopicNames()).has(topic))
  const offsets = await admin.fetchTopicOffsets(topic)
  assert.deepEqual(offsets.map(o => [o.partition, o.low, o.high]), [[0, '0', '2']])
  produced.push({
    topic,
    codec: 'none',
    records: ['auto-1', 'auto-2'].map((v, i) => ({ partition: 0, offset: i, key: null, value: v, headers: [], timestamp: null })),
  })
})

for (const [codec, type] of [
  ['none', CompressionTypes.None],
  ['gzip', CompressionTypes.GZIP],
  ['snappy', CompressionTypes.Snappy],
  ['lz4', CompressionTypes.LZ4],
  ['zstd', CompressionTypes.ZSTD],
]) {
  test(`produce with ${codec}: keys, headers, timestamps; offsets and watermarks`, async () => {
    const topic = unique(`kjs-${codec}`)
    await createTopic(topic)
    const base = 1_730_000_000_000
    const records = []
    let n = 0
    for (let batch = 0; batch < 4; batch++) {
      const messages = []
      for (let j = 0; j < 40; j++, n++) {
        messages.push({
          key: `key-${n % 9}`,
          value: `value-${n}-` + 'q'.repeat((n * 31) % 700),
          headers: { idx: String(n), codec },
          timestamp: String(base + 1000 * n),
        })
      }
      const { result, records: recs } = await sendToPartition(topic, 0, messages, { compression: type })
      assert.equal(Number(result.baseOffset), batch * 40)
      records.push(...recs)
    }
    const offsets = await admin.fetchTopicOffsets(topic)
    assert.deepEqual(offsets.map(o => [o.partition, o.low, o.high]), [[0, '0', String(n)]])

    // Offsets by timestamp: first record with timestamp >= target.
    const byTs = await admin.fetchTopicOffsetsByTimestamp(topic, base + 1000 * 57 + 1)
    assert.deepEqual(byTs, [{ partition: 0, offset: '58' }])
    // After the last timestamp KafkaJS reports the high watermark.
    const past = await admin.fetchTopicOffsetsByTimestamp(topic, base + 1000 * n)
    assert.deepEqual(past, [{ partition: 0, offset: String(n) }])

    produced.push({ topic, codec, records })
  })
}

test('null values (tombstones), null and empty keys', async () => {
  const topic = unique('kjs-null')
  await createTopic(topic)
  const messages = [
    { key: 'tomb', value: null },
    { key: null, value: 'no-key' },
    { key: '', value: '' },
  ]
  const { records } = await sendToPartition(topic, 0, messages)
  assert.deepEqual(records.map(r => [r.offset, r.key, r.value]), [[0, 'tomb', null], [1, null, 'no-key'], [2, '', '']])
  produced.push({ topic, codec: 'none', records })
})

test('per-partition order across a multi-partition topic', async () => {
  const topic = unique('kjs-order')
  await createTopic(topic, 4)
  const records = []
  for (let round = 0; round < 5; round++) {
    // One send with messages for every partition.
    const messages = []
    for (let p = 0; p < 4; p++) {
      for (let s = 0; s < 10; s++) messages.push({ partition: p, value: `p${p}-${round * 10 + s}` })
    }
    const res = await producer.send({ topic, messages, compression: CompressionTypes.GZIP })
    assert.equal(res.length, 4)
    for (const r of res) {
      assert.equal(r.errorCode, 0)
      assert.equal(Number(r.baseOffset), round * 10)
      for (let s = 0; s < 10; s++) {
        records.push({
          partition: r.partition,
          offset: round * 10 + s,
          key: null,
          value: `p${r.partition}-${round * 10 + s}`,
          headers: [],
          timestamp: null,
        })
      }
    }
  }
  const offsets = (await admin.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition)
  assert.deepEqual(offsets.map(o => [o.partition, o.high]), [[0, '50'], [1, '50'], [2, '50'], [3, '50']])

  // Keyed messages (default partitioner): a key always lands in one partition.
  const where = {}
  for (let i = 0; i < 60; i++) {
    const [r] = await producer.send({ topic, messages: [{ key: `k${i % 6}`, value: `keyed-${i}` }] })
    if (where[`k${i % 6}`] === undefined) where[`k${i % 6}`] = r.partition
    assert.equal(r.partition, where[`k${i % 6}`])
  }
  expectations.orderTopic = { topic, perPartitionPrefix: 50 }
  produced.push({ topic, codec: 'gzip', records, partial: true })
})

test('LogAppendTime topic: the broker sets the timestamps', async () => {
  const topic = unique('kjs-lat')
  await createTopic(topic, 1, [{ name: 'message.timestamp.type', value: 'LogAppendTime' }])
  const before = Date.now()
  const res = await producer.send({ topic, messages: [{ value: 'lat', timestamp: '1000000000000' }] })
  const after = Date.now()
  const lat = Number(res[0].logAppendTime)
  assert.ok(before <= lat && lat <= after, `logAppendTime ${res[0].logAppendTime} not in [${before}, ${after}]`)
  const cfg = await topicConfigs(topic)
  assert.equal(cfg['message.timestamp.type'].configValue, 'LogAppendTime')
  expectations.logAppendTime = { topic, timestamp: lat }
})

test('describeConfigs: defaults, overrides; alterConfigs', async () => {
  const topic = unique('kjs-cfg')
  await createTopic(topic, 1, [{ name: 'retention.ms', value: '3600000' }])
  let cfg = await topicConfigs(topic)
  const defaults = {
    'cleanup.policy': 'delete',
    'max.message.bytes': '1048588',
    'segment.bytes': '1073741824',
    'message.timestamp.type': 'CreateTime',
  }
  for (const [name, value] of Object.entries(defaults)) {
    assert.ok(cfg[name], `${name} missing`)
    assert.equal(cfg[name].configValue, value, name)
    assert.equal(cfg[name].isDefault, true, name)
    assert.equal(cfg[name].configSource, DEFAULT_SOURCE, name)
  }
  assert.equal(cfg['retention.ms'].configValue, '3600000')
  assert.equal(cfg['retention.ms'].isDefault, false)
  assert.equal(cfg['retention.ms'].configSource, TOPIC_CONFIG_SOURCE)

  // Only the named keys when configNames is given.
  const some = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['cleanup.policy'] }],
  })
  assert.deepEqual(some.resources[0].configEntries.map(e => e.configName), ['cleanup.policy'])

  // AlterConfigs (non-incremental: unnamed keys go back to their defaults).
  await admin.alterConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.bytes', value: '5000000' }] }],
  })
  cfg = await topicConfigs(topic)
  assert.equal(cfg['retention.bytes'].configValue, '5000000')
  assert.equal(cfg['retention.bytes'].configSource, TOPIC_CONFIG_SOURCE)
  assert.equal(cfg['retention.ms'].configValue, '604800000')
  assert.equal(cfg['retention.ms'].configSource, DEFAULT_SOURCE)

  const plain = unique('kjs-cfg-plain')
  await createTopic(plain)
  cfg = await topicConfigs(plain)
  assert.equal(cfg['retention.ms'].configValue, '604800000')
  assert.equal(cfg['retention.ms'].isDefault, true)
})

test('createPartitions grows a topic; shrinking is refused', async () => {
  const topic = unique('kjs-parts')
  await createTopic(topic, 1)
  await admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] })
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  assert.equal(md.topics[0].partitions.length, 3)
  const { records } = await sendToPartition(topic, 2, [{ value: 'in-p2' }])
  assert.equal(records[0].offset, 0)
  produced.push({ topic, codec: 'none', records })
  await assert.rejects(
    admin.createPartitions({ topicPartitions: [{ topic, count: 2 }] }),
    rejectsWith('INVALID_PARTITIONS')
  )
})

test('deleteTopicRecords moves the low watermark', async () => {
  const topic = unique('kjs-delrec')
  await createTopic(topic, 1)
  const { records } = await sendToPartition(topic, 0, Array.from({ length: 10 }, (_, i) => ({ value: `r${i}` })))
  await admin.fetchTopicOffsets(topic) // loads the partition leaders into KafkaJS's metadata
  await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '6' }] })
  const offsets = await admin.fetchTopicOffsets(topic)
  assert.deepEqual(offsets.map(o => [o.partition, o.low, o.high]), [[0, '6', '10']])
  produced.push({ topic, codec: 'none', records: records.slice(6), lowWatermark: 6 })
})

test('deleteTopics removes the topic from metadata', async () => {
  const topic = unique('kjs-del')
  await createTopic(topic, 2)
  // A producer that knows the topic refreshes its metadata with auto creation
  // on, which would re-create the topic: produce with one that is gone by then.
  const shortLived = kafka.producer({ idempotent: false, createPartitioner: Partitioners.DefaultPartitioner })
  await shortLived.connect()
  await shortLived.send({ topic, messages: [{ value: 'x' }] })
  await shortLived.disconnect()
  await admin.deleteTopics({ topics: [topic], timeout: 10000 })
  assert.ok(!(await listTopicNames()).has(topic), 'deleted topic still listed')
  expectations.deletedTopic = topic
})

test('a message bigger than max.message.bytes is rejected with MESSAGE_TOO_LARGE', async () => {
  const topic = unique('kjs-big')
  await createTopic(topic, 1)
  const big = crypto.randomBytes(2 * 1024 * 1024)
  await assert.rejects(
    producer.send({ topic, messages: [{ value: big }] }),
    rejectsWith('MESSAGE_TOO_LARGE')
  )
  const { records } = await sendToPartition(topic, 0, [{ value: 'small' }])
  assert.equal(records[0].offset, 0)
  produced.push({ topic, codec: 'none', records })
})
