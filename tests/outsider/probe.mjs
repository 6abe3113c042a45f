// An outsider's node in another libp2p implementation (js-libp2p) probing a knoop node
// (knoop's tests/tests/admission.rs): it connects over TCP + Noise + yamux and asks
// `/knoop/sync/1` for the node's state (its set digest) and for one transaction by id. It prints
// one JSON object with the raw CBOR answers (hex).
//
//   node probe.mjs <target multiaddr> <transaction id (64 hex)>
import './polyfill.mjs'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'

const [target, txId] = process.argv.slice(2)
if (!target || !/^[0-9a-f]{64}$/.test(txId ?? '')) {
  console.error('usage: node probe.mjs <target multiaddr> <transaction id>')
  process.exit(2)
}
const SYNC = '/knoop/sync/1'

const node = await createLibp2p({
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify() }
})

const hex = (bytes) => Buffer.from(bytes).toString('hex')

// One request on /knoop/sync/1 (CBOR bytes out, the whole answer in), or the error.
async function ask (request) {
  try {
    const stream = await node.dialProtocol(multiaddr(target), SYNC, { signal: AbortSignal.timeout(10000) })
    const chunks = []
    const reading = (async () => {
      for await (const chunk of stream) chunks.push(chunk.subarray ? chunk.subarray() : chunk)
    })()
    stream.send(request)
    await stream.close()
    await reading
    return { answer: hex(Buffer.concat(chunks.map((c) => Buffer.from(c)))) }
  } catch (e) {
    return { error: String(e?.message ?? e) }
  }
}

const result = { connected: false }
try {
  await node.dial(multiaddr(target), { signal: AbortSignal.timeout(10000) })
  result.connected = true
} catch (e) {
  result.dial_error = String(e?.message ?? e)
}
// {"s": {"t": now}}: the state request of specs/sync.md §6.4.
const now = BigInt(Date.now())
const state = Buffer.alloc(15)
Buffer.from([0xa1, 0x61, 0x73, 0xa1, 0x61, 0x74, 0x1b]).copy(state, 0)
state.writeBigUInt64BE(now, 7)
result.state = await ask(state)
// {"f": [id]}: a fetch of one transaction.
const fetch = Buffer.concat([Buffer.from([0xa1, 0x61, 0x66, 0x81, 0x78, 0x40]), Buffer.from(txId, 'ascii')])
result.fetch = await ask(fetch)
console.log(JSON.stringify(result))
await node.stop()
