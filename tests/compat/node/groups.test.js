// KafkaJS 2.2.4 consumer groups against strom. Run by
// tests/compat/python/test_groups_kafkajs.py, which starts the broker and passes:
//   STROM_BOOTSTRAP  host:port of the broker
//   STROM_COMPAT_OUT file to write the groups and offsets KafkaJS left committed
//                    (JSON), which the Python side checks again across broker
//                    restarts and resumes with librdkafka.
// Waits are failure guards only; no assertion depends on timing. The broker
// delays an empty group's first rebalance by 3 s (group.initial.rebalance.delay.ms).
'use strict'

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const { Kafka, logLevel, Partitioners, AssignerProtocol } = require('kafkajs')

const BOOTSTRAP = process.env.STROM_BOOTSTRAP
const OUT = process.env.STROM_COMPAT_OUT
if (!BOOTSTRAP) throw new Error('STROM_BOOTSTRAP is not set (run through test_groups_kafkajs.py)')

const GUARD_MS = 60000

const kafka = new Kafka({
  clientId: 'strom-compat-kafkajs-groups',
  brokers: [BOOTSTRAP],
  logLevel: logLevel.NOTHING,
  connectionTimeout: 10000,
  requestTimeout: 30000,
  retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 },
})

const NON_EMPTY_GROUP = 68

const unique = prefix => `${prefix}-${crypto.randomBytes(5).toString('hex')}`
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

const leftCommitted = [] // {groupId, topic, partitions, offsets: {partition: [offset, metadata]}, values}

let admin
let producer
const consumers = []

test.before(async () => {
  admin = kafka.admin()
  await admin.connect()
  producer = kafka.producer({ idempotent: false, createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
})

test.after(async () => {
  for (const c of consumers) await c.disconnect().catch(() => {})
  if (producer) await producer.disconnect()
  if (admin) await admin.disconnect()
  if (OUT) fs.writeFileSync(OUT, JSON.stringify({ groups: leftCommitted }, null, 1))
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

async function createTopic(topic, numPartitions) {
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions, replicationFactor: 1 }],
    waitForLeaders: true,
    timeout: 10000,
  })
  assert.equal(created, true)
}

// Writes `perPartition` records to every partition; returns Map "p/offset" -> value.
async function produce(topic, partitions, perPartition, tag) {
  const out = new Map()
  for (let p = 0; p < partitions; p++) {
    const messages = []
    for (let i = 0; i < perPartition; i++) messages.push({ value: `${tag}-${p}-${i}`, partition: p })
    const [r] = await producer.send({ topic, messages, acks: -1 })
    assert.equal(r.errorCode, 0)
    messages.forEach((m, i) => out.set(`${p}/${Number(r.baseOffset) + i}`, m.value))
  }
  return out
}

// A group member that records what it was handed and its latest assignment.
async function member(groupId, topic, { name, autoCommit = true, onMessage } = {}) {
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: 6000,
    heartbeatInterval: 500,
    rebalanceTimeout: 10000,
    maxWaitTimeInMs: 100,
    retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 1000 },
  })
  consumers.push(consumer)
  const state = { name, consumer, received: [], assignment: null, joins: 0, crashed: null }
  consumer.on(consumer.events.GROUP_JOIN, e => {
    state.assignment = new Set((e.payload.memberAssignment[topic] || []).map(Number))
    state.joins++
  })
  consumer.on(consumer.events.CRASH, e => {
    state.crashed = e.payload.error
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit,
    eachMessage: async ({ partition, message }) => {
      state.received.push({ partition, offset: Number(message.offset), value: String(message.value) })
      if (onMessage) await onMessage(consumer, partition, message)
    },
  })
  return state
}

// Every expected record handed out exactly once, with its value.
function checkOnce(states, expected) {
  const seen = new Map()
  for (const s of states) {
    for (const r of s.received) {
      const k = `${r.partition}/${r.offset}`
      if (!expected.has(k)) continue
      assert.equal(r.value, expected.get(k), k)
      seen.set(k, [...(seen.get(k) || []), s.name])
    }
  }
  const missing = [...expected.keys()].filter(k => !seen.has(k))
  assert.deepEqual(missing, [], 'records never consumed')
  const dups = [...seen.entries()].filter(([, who]) => who.length > 1)
  assert.deepEqual(dups, [], 'records consumed more than once')
  return seen
}

async function committed(groupId, topic) {
  const [t] = await admin.fetchOffsets({ groupId, topics: [topic] })
  assert.equal(t.topic, topic)
  return Object.fromEntries(t.partitions.map(p => [p.partition, [Number(p.offset), p.metadata]]))
}

async function describe(groupId) {
  const { groups } = await admin.describeGroups([groupId])
  assert.equal(groups.length, 1)
  return groups[0]
}

function decodedAssignment(m) {
  const a = AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
  return a ? a.assignment : {}
}

test('a group member consumes everything a producer wrote and commits it', async () => {
  const topic = unique('kjsg-one')
  const groupId = unique('kjsg-one-g')
  await createTopic(topic, 3)
  const expected = await produce(topic, 3, 10, 'one')

  const m = await member(groupId, topic, { name: 'one' })
  await waitFor(() => m.received.length >= 30 || m.crashed, 'all 30 records')
  assert.equal(m.crashed, null)
  checkOnce([m], expected)
  assert.deepEqual(m.assignment, new Set([0, 1, 2]))
  // Auto-commit after each batch: the group ends at the high watermarks.
  await waitFor(async () => {
    const c = await committed(groupId, topic)
    return [0, 1, 2].every(p => c[p][0] === 10)
  }, 'committed offsets at 10')
  await m.consumer.disconnect()
})

test('two members split the partitions; list, describe and delete the group', async () => {
  const topic = unique('kjsg-two')
  const groupId = unique('kjsg-two-g')
  await createTopic(topic, 4)

  const a = await member(groupId, topic, { name: 'a' })
  const b = await member(groupId, topic, { name: 'b' })
  await waitFor(() => {
    const [sa, sb] = [a.assignment, b.assignment]
    if (!sa || !sb || sa.size === 0 || sb.size === 0) return false
    const union = new Set([...sa, ...sb])
    return union.size === 4 && sa.size + sb.size === 4
  }, 'two members with disjoint assignments covering 4 partitions')
  assert.equal(a.assignment.size, 2)
  const sets = { a: new Set(a.assignment), b: new Set(b.assignment) }

  const expected = await produce(topic, 4, 10, 'two')
  await waitFor(() => a.received.length + b.received.length >= 40 || a.crashed || b.crashed, 'all 40 records')
  const seen = checkOnce([a, b], expected)
  for (const [k, who] of seen) {
    const p = Number(k.split('/')[0])
    assert.deepEqual(who, [sets.a.has(p) ? 'a' : 'b'], `${k} read by the wrong member`)
  }
  await waitFor(async () => {
    const c = await committed(groupId, topic)
    return [0, 1, 2, 3].every(p => c[p][0] === 10)
  }, 'committed offsets at 10')

  const { groups } = await admin.listGroups()
  const listed = groups.find(g => g.groupId === groupId)
  assert.deepEqual(listed, { groupId, protocolType: 'consumer' })

  const d = await describe(groupId)
  assert.equal(d.errorCode, 0)
  assert.equal(d.state, 'Stable')
  assert.equal(d.protocolType, 'consumer')
  assert.equal(d.protocol, 'RoundRobinAssigner') // KafkaJS's only default assigner
  assert.equal(d.members.length, 2)
  const described = d.members.map(decodedAssignment).map(x => new Set(x[topic]))
  assert.deepEqual(
    described.sort((x, y) => Math.min(...x) - Math.min(...y)),
    [sets.a, sets.b].sort((x, y) => Math.min(...x) - Math.min(...y))
  )

  // Not while it has members: NON_EMPTY_GROUP.
  await assert.rejects(admin.deleteGroups([groupId]), e => {
    assert.equal(e.name, 'KafkaJSDeleteGroupsError', e.message)
    assert.deepEqual(e.groups.map(g => [g.groupId, g.errorCode]), [[groupId, NON_EMPTY_GROUP]])
    return true
  })

  await a.consumer.disconnect()
  await b.consumer.disconnect()
  const empty = await describe(groupId)
  assert.equal(empty.state, 'Empty')
  assert.deepEqual(empty.members, [])

  const deleted = await admin.deleteGroups([groupId])
  assert.deepEqual(deleted.map(g => [g.groupId, g.errorCode]), [[groupId, 0]])
  assert.equal((await admin.listGroups()).groups.find(g => g.groupId === groupId), undefined)
  const c = await committed(groupId, topic)
  assert.deepEqual(Object.values(c).map(x => x[0]), [-1, -1, -1, -1])
  // KafkaJS speaks DescribeGroups v0-v2: an unknown group is Dead with no members.
  const dead = await describe(groupId)
  assert.equal(dead.errorCode, 0)
  assert.equal(dead.state, 'Dead')
  assert.deepEqual(dead.members, [])
})

test('a restarted member resumes from the committed offsets (manual commits with metadata)', async () => {
  const topic = unique('kjsg-resume')
  const groupId = unique('kjsg-resume-g')
  await createTopic(topic, 3)
  const first = await produce(topic, 3, 10, 'rs')

  // Commits only the first 4 records of each partition, with metadata.
  const m1 = await member(groupId, topic, {
    name: 'm1',
    autoCommit: false,
    onMessage: async (consumer, partition, message) => {
      const offset = Number(message.offset)
      if (offset < 4) {
        await consumer.commitOffsets([
          { topic, partition, offset: String(offset + 1), metadata: `kjs-${partition}-${offset + 1}` },
        ])
      }
    },
  })
  await waitFor(() => m1.received.length >= 30 || m1.crashed, 'first member read all 30')
  checkOnce([m1], first)
  await m1.consumer.disconnect()
  assert.deepEqual(await committed(groupId, topic), {
    0: [4, 'kjs-0-4'],
    1: [4, 'kjs-1-4'],
    2: [4, 'kjs-2-4'],
  })

  // A new member starts at offset 4 everywhere: 4..9, then a marker at 10.
  const m2 = await member(groupId, topic, { name: 'm2', autoCommit: false })
  await waitFor(() => m2.received.length >= 18 || m2.crashed, 'second member read 18 records')
  const marker = await produce(topic, 3, 1, 'mark')
  await waitFor(() => m2.received.filter(r => r.offset === 10).length === 3, 'markers')
  const got = m2.received.map(r => `${r.partition}/${r.offset}`).sort()
  const want = []
  for (let p = 0; p < 3; p++) for (let o = 4; o <= 10; o++) want.push(`${p}/${o}`)
  assert.deepEqual(got, want.sort())
  checkOnce([m2], new Map([...first].filter(([k]) => Number(k.split('/')[1]) >= 4).concat([...marker])))
  // Commit a position per partition and leave: the Python side checks these
  // across broker restarts and resumes from them with librdkafka.
  await m2.consumer.commitOffsets([0, 1, 2].map(p => ({ topic, partition: p, offset: String(6 + p), metadata: `left-${p}` })))
  await m2.consumer.disconnect()
  const left = await committed(groupId, topic)
  assert.deepEqual(left, { 0: [6, 'left-0'], 1: [7, 'left-1'], 2: [8, 'left-2'] })
  leftCommitted.push({ groupId, topic, partitions: 3, offsets: left, end: 11 })
})
