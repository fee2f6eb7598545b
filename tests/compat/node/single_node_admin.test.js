// KafkaJS 2.2.4's partition-reassignment admin calls against a single strom node.
// Run by tests/compat/python/test_single_node_admin.py with STROM_BOOTSTRAP set.
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const { Kafka, logLevel } = require('kafkajs')

const BOOTSTRAP = process.env.STROM_BOOTSTRAP
if (!BOOTSTRAP) throw new Error('STROM_BOOTSTRAP is not set (run through test_single_node_admin.py)')

const kafka = new Kafka({
  clientId: 'strom-compat-kafkajs-admin',
  brokers: [BOOTSTRAP],
  logLevel: logLevel.NOTHING,
  retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
})

test('reassignments to the only node succeed, others are refused, none is listed', async () => {
  const admin = kafka.admin()
  await admin.connect()
  try {
    const topic = `kjs-reassign-${crypto.randomBytes(4).toString('hex')}`
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true }), true)
    const { brokers } = await admin.describeCluster()
    assert.equal(brokers.length, 1)
    const node = brokers[0].nodeId
    await admin.alterPartitionReassignments({
      topics: [{ topic, partitionAssignment: [{ partition: 0, replicas: [node] }] }],
    })
    await assert.rejects(
      admin.alterPartitionReassignments({
        topics: [{ topic, partitionAssignment: [{ partition: 1, replicas: [node, node + 1] }] }],
      }),
      error => {
        assert.deepEqual(error.errors.map(e => [e.partition, e.type]), [[1, 'INVALID_REPLICA_ASSIGNMENT']])
        return true
      }
    )
    const listed = await admin.listPartitionReassignments({})
    assert.deepEqual(listed.topics, [])
  } finally {
    await admin.disconnect()
  }
})
