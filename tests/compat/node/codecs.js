// Compression codecs for KafkaJS, none of which needs a native build:
//   snappy: kafkajs-snappy (pure JS, snappyjs)
//   lz4:    lz4js (pure JS; LZ4 frame format, which Kafka's v2 batches use)
//   zstd:   zstd-codec (Emscripten/wasm build of the reference zstd)
// KafkaJS calls CompressionCodecs[type]() and uses the returned
// { compress(encoder) -> Buffer, decompress(buffer) -> Buffer }.
'use strict'

const SnappyCodec = require('kafkajs-snappy')
const lz4 = require('lz4js')
const { ZstdCodec } = require('zstd-codec')

const Lz4Codec = () => ({
  async compress(encoder) {
    return Buffer.from(lz4.compress(encoder.buffer))
  },
  async decompress(buffer) {
    return Buffer.from(lz4.decompress(buffer))
  },
})

let zstdSimple = null
const zstdReady = () => {
  if (!zstdSimple) {
    zstdSimple = new Promise(resolve => ZstdCodec.run(zstd => resolve(new zstd.Simple())))
  }
  return zstdSimple
}

const ZstdCodecFactory = () => ({
  async compress(encoder) {
    const simple = await zstdReady()
    return Buffer.from(simple.compress(encoder.buffer, 3))
  },
  async decompress(buffer) {
    const simple = await zstdReady()
    const out = simple.decompress(buffer)
    if (out == null) throw new Error('zstd decompression failed')
    return Buffer.from(out)
  },
})

function registerCodecs(CompressionCodecs, CompressionTypes) {
  CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
  CompressionCodecs[CompressionTypes.LZ4] = Lz4Codec
  CompressionCodecs[CompressionTypes.ZSTD] = ZstdCodecFactory
}

module.exports = { registerCodecs }
