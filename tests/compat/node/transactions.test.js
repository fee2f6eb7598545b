// KafkaJS 2.2.4 transactions against strom. Run by
// tests/compat/python/test_transactions_kafkajs.py, which starts the broker and passes:
//   STROM_BOOTSTRAP  host:port of the broker
//   STROM_COMPAT_OUT file to write the transactional topics (committed and all
//                    records, with offsets) and the group offsets committed by
//                    transactions (JSON), which the Python side reads back with
//                    librdkafka (read_committed and read_uncommitted) across
//                    broker restarts.
// KafkaJS speaks InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and
// TxnOffsetCommit v0-v1, Fetch up to v11 and ListOffsets up to v3 (its admin
// lists offsets read_committed). Waits are failure guards only; no assertion
// depends on timing. Every consumer here is in a fresh group, whose first
// rebalance the broker delays by 3 s (group.initial.rebalance.delay.ms).
'use strict'

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const { Kafka, logLevel } = require('kafkajs')

const BOOTSTRAP = process.env.STROM_BOOTSTRAP
const OUT = process.env.STROM_COMPAT_OUT
if (!BOOTSTRAP) throw new Error('STROM_BOOTSTRAP is not set (run through test_transactions_kafkajs.py)')

const GUARD_MS = 60000

const kafka = new Kafka({
  clientId: 'strom-compat-kafkajs-txn',
  brokers: [BOOTSTRAP],
  logLevel: logLevel.NOTHING,
  connectionTimeout: 10000,
  requestTimeout: 30000,
  retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 },
})

const unique = prefix => `${prefix}-${crypto.randomBytes(5).toString('hex')}`
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

const topicsOut = [] // {topic, partitions, committed: [[p, offset, value]], all: [...], high: {p: offset}}
const groupsOut = [] // {groupId, topic, offsets: {p: [offset, metadata]}} (partitions with a commit)

let admin
let plain // non-transactional, non-idempotent producer
const clients = []

test.before(async () => {
  admin = kafka.admin()
  await admin.connect()
  plain = kafka.producer({ idempotent: false })
  await plain.connect()
})

test.after(async () => {
  for (const c of clients.reverse()) await c.disconnect().catch(() => {})
  if (plain) await plain.disconnect()
  if (admin) await admin.disconnect()
  if (OUT) fs.writeFileSync(OUT, JSON.stringify({ topics: topicsOut, groups: groupsOut }, null, 1))
})

async function waitFor(pred, what, timeoutMs = GUARD_MS) {
  const deadline = Date.now() + timeoutMs
  let last
  for (;;) {
    try {
      last = await pred()
      if (last) return last
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${last}`)
    await sleep(100)
  }
}

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

async function createTopic(topic, numPartitions) {
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions, replicationFactor: 1 }],
    waitForLeaders: true,
    timeout: 10000,
  })
  assert.equal(created, true, `createTopics(${topic}) returned ${created}`)
}

async function txProducer(transactionalId) {
  const p = kafka.producer({ transactionalId, maxInFlightRequests: 1, idempotent: true })
  clients.push(p)
  await p.connect()
  return p
}

// Sends values to one partition (through a transaction or a plain producer) and
// waits for the acknowledgement; returns [[partition, offset, value]].
async function sendTo(sender, topic, partition, values) {
  const res = await sender.send({ topic, messages: values.map(value => ({ value, partition })), acks: -1 })
  assert.equal(res.length, 1)
  assert.equal(res[0].errorCode, 0)
  assert.equal(res[0].partition, partition)
  const base = Number(res[0].baseOffset)
  return values.map((v, i) => [partition, base + i, v])
}

const byOffset = (a, b) => a[0] - b[0] || a[1] - b[1]

// Reads `topic` from the beginning in a fresh group until every partition has
// handed out its record at `last[p]` (the last record written there, always a
// committed one); returns every record received as [partition, offset, value].
async function readAll(topic, last, { readUncommitted }) {
  const consumer = kafka.consumer({
    groupId: unique(readUncommitted ? 'kjst-ru' : 'kjst-rc'),
    readUncommitted,
    sessionTimeout: 6000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 100,
  })
  clients.push(consumer)
  const got = []
  let crashed = null
  consumer.on(consumer.events.CRASH, e => {
    crashed = e.payload.error
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      got.push([partition, Number(message.offset), String(message.value)])
    },
  })
  const done = () => Object.entries(last).every(([p, o]) => got.some(r => r[0] === Number(p) && r[1] >= o))
  try {
    await waitFor(
      () => crashed || done(),
      `${readUncommitted ? 'read_uncommitted' : 'read_committed'} consumer to reach ${JSON.stringify(last)} ` +
        `(got ${JSON.stringify(got)})`
    )
    assert.equal(crashed, null, `consumer crashed: ${crashed}`)
  } finally {
    await consumer.disconnect()
  }
  return got.sort(byOffset)
}

function lastPerPartition(records) {
  const last = {}
  for (const [p, o] of records) last[p] = Math.max(last[p] ?? -1, o)
  return last
}

// Reads the topic read_committed and read_uncommitted and checks the exact
// records (partition, offset, value) each sees; records it for the Python side.
async function checkIsolation(topic, partitions, committed, aborted) {
  committed = [...committed].sort(byOffset)
  const all = [...committed, ...aborted].sort(byOffset)
  const last = lastPerPartition(all)
  assert.deepEqual(lastPerPartition(committed), last, 'the test must end every partition with a committed record')
  const [rc, ru] = await Promise.all([
    readAll(topic, last, { readUncommitted: false }),
    readAll(topic, last, { readUncommitted: true }),
  ])
  assert.deepEqual(rc, committed, 'read_committed must see exactly the committed (and non-transactional) records')
  assert.deepEqual(ru, all, 'read_uncommitted must see every record, aborted ones too')
  const offsets = await admin.fetchTopicOffsets(topic)
  const high = Object.fromEntries(offsets.map(o => [o.partition, Number(o.high)]))
  topicsOut.push({ topic, partitions, committed, all, high })
  return high
}

// Committed offsets of a group for a topic: {partition: [offset, metadata]};
// a partition without one reads [-1] (metadata left out). KafkaJS's
// fetchOffsets hands out empty metadata ("") as null.
async function committedOffsets(groupId, topic) {
  const [t] = await admin.fetchOffsets({ groupId, topics: [topic] })
  assert.equal(t.topic, topic)
  return Object.fromEntries(
    t.partitions.map(p => [p.partition, Number(p.offset) < 0 ? [Number(p.offset)] : [Number(p.offset), p.metadata]])
  )
}

// Offsets for the Python side (librdkafka): committed partitions only, "" for no metadata.
const leftOffsets = offsets =>
  Object.fromEntries(Object.entries(offsets).filter(([, [o]]) => o >= 0).map(([p, [o, m]]) => [p, [o, m ?? '']]))

const topicOffsets = async topic =>
  Object.fromEntries((await admin.fetchTopicOffsets(topic)).map(o => [o.partition, Number(o.high)]))

test('committed transactions are read_committed-visible, aborted ones only read_uncommitted', async () => {
  const topic = unique('kjst-iso')
  await createTopic(topic, 2)
  const producer = await txProducer(unique('kjst-iso-tx'))

  // [outcome, [[partition, count], ...] sent in this order, plain records written while it is open]
  const plan = [
    ['commit', [[0, 3], [1, 2]]],
    ['abort', [[0, 2], [1, 3]]],
    ['commit', [[1, 2]]],
    ['abort', [[0, 1]], [[0, 1], [1, 1]]],
    ['commit', [[0, 2], [1, 1], [0, 1]]],
    ['abort', [[1, 2], [0, 2]]],
    ['commit', [[0, 1], [1, 1]]],
  ]
  const committed = []
  const aborted = []
  const markers = { 0: 0, 1: 0 }
  for (const [i, [outcome, sends, plainDuring = []]] of plan.entries()) {
    const txn = await producer.transaction()
    const mine = []
    for (const [s, [p, n]] of sends.entries()) {
      const values = Array.from({ length: n }, (_, j) => `t${i}-${outcome}-s${s}-p${p}-${j}`)
      mine.push(...(await sendTo(txn, topic, p, values))) // acknowledged before the transaction ends
    }
    for (const [p, n] of plainDuring) {
      const values = Array.from({ length: n }, (_, j) => `plain-during-t${i}-p${p}-${j}`)
      committed.push(...(await sendTo(plain, topic, p, values)))
    }
    if (plainDuring.length) {
      // The open transaction holds the last stable offset (KafkaJS's admin lists
      // offsets read_committed) at its first record; elsewhere it is the end.
      const firstOpen = {}
      for (const [p, o] of mine) firstOpen[p] = Math.min(firstOpen[p] ?? Infinity, o)
      const ends = lastPerPartition(committed)
      const lso = await topicOffsets(topic)
      for (const p of [0, 1]) {
        const want = p in firstOpen ? firstOpen[p] : ends[p] + 1
        assert.equal(lso[p], want, `partition ${p}: last stable offset with transaction ${i} open`)
      }
    }
    if (outcome === 'commit') {
      await txn.commit()
      committed.push(...mine)
    } else {
      await txn.abort()
      aborted.push(...mine)
    }
    for (const p of new Set(sends.map(([p]) => p))) markers[p]++
  }

  const high = await checkIsolation(topic, 2, committed, aborted)
  // Every data record plus one control record (marker) per transaction and partition.
  const records = [...committed, ...aborted]
  for (const p of [0, 1]) {
    assert.equal(high[p], records.filter(r => r[0] === p).length + markers[p], `partition ${p} high watermark`)
  }
})

test('sendOffsets commits group offsets with the transaction, and not when it aborts', async () => {
  const input = unique('kjst-in')
  const output = unique('kjst-out')
  const groupId = unique('kjst-offsets-g')
  await createTopic(input, 2)
  await createTopic(output, 1)
  for (const p of [0, 1]) {
    await sendTo(plain, input, p, Array.from({ length: 10 }, (_, j) => `in-p${p}-${j}`))
  }
  const producer = await txProducer(unique('kjst-offsets-tx'))
  // Partition 0 carries commit metadata (KafkaJS passes it through to
  // TxnOffsetCommit), partition 1 none (null: stored as "", like Kafka).
  const offsetsOf = (o0, o1) => [
    {
      topic: input,
      partitions: [
        { partition: 0, offset: String(o0), metadata: `txn-${o0}` },
        { partition: 1, offset: String(o1) },
      ],
    },
  ]
  const committed = []
  const aborted = []
  assert.deepEqual(await committedOffsets(groupId, input), { 0: [-1], 1: [-1] })

  // Records and offsets, committed.
  let txn = await producer.transaction()
  committed.push(...(await sendTo(txn, output, 0, ['out-commit-1'])))
  await txn.sendOffsets({ consumerGroupId: groupId, topics: offsetsOf(3, 5) })
  assert.deepEqual(await committedOffsets(groupId, input), { 0: [-1], 1: [-1] }, 'pending offsets visible before the commit')
  await txn.commit()
  assert.deepEqual(await committedOffsets(groupId, input), { 0: [3, 'txn-3'], 1: [5, null] })

  // Records and offsets, aborted: the group keeps 3 and 5.
  txn = await producer.transaction()
  aborted.push(...(await sendTo(txn, output, 0, ['out-abort-1', 'out-abort-2'])))
  await txn.sendOffsets({ consumerGroupId: groupId, topics: offsetsOf(7, 9) })
  await txn.abort()
  assert.deepEqual(await committedOffsets(groupId, input), { 0: [3, 'txn-3'], 1: [5, null] }, 'aborted offsets were applied')

  // Offsets only (AddOffsetsToTxn, no partition added), committed.
  txn = await producer.transaction()
  await txn.sendOffsets({ consumerGroupId: groupId, topics: offsetsOf(4, 6) })
  await txn.commit()
  const left = await committedOffsets(groupId, input)
  assert.deepEqual(left, { 0: [4, 'txn-4'], 1: [6, null] })

  // Offsets only, aborted.
  txn = await producer.transaction()
  await txn.sendOffsets({ consumerGroupId: groupId, topics: offsetsOf(8, 8) })
  await txn.abort()
  assert.deepEqual(await committedOffsets(groupId, input), left, 'aborted offsets were applied')
  groupsOut.push({ groupId, topic: input, offsets: leftOffsets(left) })

  // A member of the group resumes at the transactionally committed offsets.
  const member = kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 100 })
  clients.push(member)
  const got = []
  await member.connect()
  await member.subscribe({ topics: [input], fromBeginning: true })
  await member.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      got.push([partition, Number(message.offset), String(message.value)])
    },
  })
  await waitFor(() => [0, 1].every(p => got.some(r => r[0] === p && r[1] === 9)), `member to read both partitions to offset 9 (got ${JSON.stringify(got)})`)
  await member.disconnect()
  const want = []
  for (const [p, from] of [[0, 4], [1, 6]]) for (let o = from; o < 10; o++) want.push([p, o, `in-p${p}-${o}`])
  assert.deepEqual(got.sort(byOffset), want)
  assert.deepEqual(await committedOffsets(groupId, input), left)

  // The output topic ends with a committed (plain) record so that readers know where to stop.
  committed.push(...(await sendTo(plain, output, 0, ['out-end'])))
  await checkIsolation(output, 1, committed, aborted)
})

test('a second producer with the same transactional.id fences the first', async t => {
  const topic = unique('kjst-fence')
  const groupId = unique('kjst-fence-g')
  const transactionalId = unique('kjst-fence-tx')
  await createTopic(topic, 2)

  const zombie = await txProducer(transactionalId)
  const t1 = await zombie.transaction()
  const zombieRecords = [
    ...(await sendTo(t1, topic, 0, ['zombie-p0-0', 'zombie-p0-1'])),
    ...(await sendTo(t1, topic, 1, ['zombie-p1-0', 'zombie-p1-1'])),
  ]
  await t1.sendOffsets({
    consumerGroupId: groupId,
    topics: [{ topic, partitions: [{ partition: 0, offset: '1' }, { partition: 1, offset: '1' }] }],
  })
  assert.deepEqual(await topicOffsets(topic), { 0: 0, 1: 0 }, 'last stable offsets with the first transaction open')

  // InitProducerId with the same transactional.id bumps the epoch and aborts
  // the open transaction before it answers (KafkaJS retries CONCURRENT_TRANSACTIONS).
  const fresh = await txProducer(transactionalId)
  const t2 = await fresh.transaction()
  assert.deepEqual(await topicOffsets(topic), { 0: 3, 1: 3 }, 'the fenced transaction was aborted (2 records + marker each)')
  const freshRecords = [
    ...(await sendTo(t2, topic, 0, ['fresh-p0-0', 'fresh-p0-1'])),
    ...(await sendTo(t2, topic, 1, ['fresh-p1-0'])),
  ]
  await t2.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: [{ partition: 0, offset: '4' }] }] })
  await t2.commit()

  // The fenced producer's EndTxn (v1, old epoch) is refused: Kafka answers
  // INVALID_PRODUCER_EPOCH to EndTxn before v2 (PRODUCER_FENCED from v2 on).
  let failure = null
  await assert.rejects(t1.commit(), e => {
    failure = e
    return true
  })
  const types = errorTypes(failure)
  assert.ok(
    types.includes('INVALID_PRODUCER_EPOCH'),
    `fenced commit rejected with ${failure.name}: ${failure.message} [${types}]; Kafka answers INVALID_PRODUCER_EPOCH`
  )
  t.diagnostic(`fenced commit rejected with ${failure.name} [${types}]`)

  const offsets = await committedOffsets(groupId, topic)
  assert.deepEqual(offsets, { 0: [4, null], 1: [-1] }, 'offsets of the fenced transaction were applied')
  groupsOut.push({ groupId, topic, offsets: leftOffsets(offsets) })

  const high = await checkIsolation(topic, 2, freshRecords, zombieRecords)
  // zombie records, abort marker, fresh records, commit marker
  assert.deepEqual(high, { 0: 6, 1: 5 })
})
