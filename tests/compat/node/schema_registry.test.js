// @kafkajs/confluent-schema-registry against strom's schema registry: a second
// registry client nobody here wrote. Run by tests/compat/python/test_schema_registry.py,
// which starts the broker and passes:
//   STROM_BOOTSTRAP      host:port of the Kafka listener
//   STROM_REGISTRY_URL   the registry's URL
//   STROM_TOPIC          topic to produce the framed records to
//   STROM_PY_FRAMED      base64 of a record Confluent's Python AvroSerializer framed
//                        ({"id": "py", "km": 42}, schema registered by Python)
//   STROM_PY_PROTO_FRAMED the same for Protobuf (Ride{id: "pyproto", km: 5}), its schema
//                        registered by Python as a base64 descriptor
//   STROM_COMPAT_OUT     file to write what was produced (JSON), for Python to decode
'use strict'

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const { Kafka, logLevel } = require('kafkajs')
const { SchemaRegistry, SchemaType } = require('@kafkajs/confluent-schema-registry')

const BOOTSTRAP = process.env.STROM_BOOTSTRAP
const URL = process.env.STROM_REGISTRY_URL
const TOPIC = process.env.STROM_TOPIC
if (!BOOTSTRAP || !URL || !TOPIC) throw new Error('run through test_schema_registry.py')

const registry = new SchemaRegistry({ host: URL })
const kafka = new Kafka({ clientId: 'strom-compat-sr', brokers: [BOOTSTRAP], logLevel: logLevel.NOTHING })

const RIDE = {
  type: 'record',
  name: 'Ride',
  namespace: 'strom.test',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'km', type: 'int' },
  ],
}

const out = { topic: TOPIC, records: [] }
// Decoders return class instances (avsc records, protobufjs messages): compare data.
const plain = (value) => JSON.parse(JSON.stringify(value))

test('Avro: register, encode, produce through strom', async () => {
  const { id } = await registry.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(RIDE) },
    { subject: `${TOPIC}-value` },
  )
  assert.equal(await registry.getLatestSchemaId(`${TOPIC}-value`), id)
  // Registering the same schema again answers the same id.
  const again = await registry.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(RIDE) },
    { subject: `${TOPIC}-value` },
  )
  assert.equal(again.id, id)
  const framed = await registry.encode(id, { id: 'js', km: 7 })
  assert.equal(framed[0], 0)
  assert.equal(framed.readInt32BE(1), id)
  assert.deepEqual(plain(await registry.decode(framed)), { id: 'js', km: 7 })
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({ topic: TOPIC, acks: -1, messages: [{ value: framed }] })
  await producer.disconnect()
  out.records.push({ id, framed: framed.toString('base64'), value: { id: 'js', km: 7 } })
})

test('Avro: decode what the Python serializer framed', async () => {
  const framed = Buffer.from(process.env.STROM_PY_FRAMED, 'base64')
  assert.deepEqual(plain(await registry.decode(framed)), { id: 'py', km: 42 })
})

test('Protobuf: decode what the Python serializer framed (schema registered as a descriptor)', async () => {
  const framed = Buffer.from(process.env.STROM_PY_PROTO_FRAMED, 'base64')
  assert.deepEqual(plain(await registry.decode(framed)), { id: 'pyproto', km: 5 })
})

test('JSON Schema: register, encode, decode, validate', async () => {
  const schema = {
    type: 'object',
    properties: { id: { type: 'string' }, km: { type: 'integer' } },
    required: ['id'],
  }
  const { id } = await registry.register(
    { type: SchemaType.JSON, schema: JSON.stringify(schema) },
    { subject: `${TOPIC}-json` },
  )
  const framed = await registry.encode(id, { id: 'j', km: 1 })
  assert.deepEqual(plain(await registry.decode(framed)), { id: 'j', km: 1 })
  await assert.rejects(registry.encode(id, { km: 'x' }))
})

test('Protobuf: register text, encode, decode', async () => {
  const schema = 'syntax = "proto3";\npackage strom.test;\nmessage Ride {\n  string id = 1;\n  int32 km = 2;\n}\n'
  const { id } = await registry.register(
    { type: SchemaType.PROTOBUF, schema },
    { subject: `${TOPIC}-proto` },
  )
  const framed = await registry.encode(id, { id: 'p', km: 3 })
  assert.deepEqual(plain(await registry.decode(framed)), { id: 'p', km: 3 })
})

test('Incompatible schema is refused with 409', async () => {
  const broken = { ...RIDE, fields: [{ name: 'id', type: 'string' }, { name: 'km', type: 'boolean' }] }
  await assert.rejects(
    registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(broken) }, { subject: `${TOPIC}-value` }),
    (e) => e.status === 409 || /409|incompatible/i.test(String(e.message)),
  )
})

test.after(() => {
  if (process.env.STROM_COMPAT_OUT) fs.writeFileSync(process.env.STROM_COMPAT_OUT, JSON.stringify(out))
})
