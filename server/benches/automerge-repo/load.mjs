// Simulated devices against an automerge-repo sync server: each device connects with its own
// WebSocket, stores RECORDS / DEVICES documents of its own (each acknowledged by the server),
// then edits one field per sync back to back for SECS seconds, round robin over its documents
// (the client throttles each document's sync to one per 100 ms; round robin keeps that from
// limiting the rate). An edit counts as synced when the server's heads for the document (its
// sync reply) include it. Prints one JSON line.
//
//     node load.mjs ws://127.0.0.1:PORT DEVICES RECORDS SECS
import { Repo } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"

const [url, devicesArg, recordsArg, secsArg] = process.argv.slice(2)
const devices = Number(devicesArg)
const perDevice = Math.max(1, Math.floor(Number(recordsArg) / devices))
const secs = Number(secsArg)

const sameHeads = (a, b) => a.length === b.length && a.every(h => b.includes(h))

// Resolves once the server's heads for the document are `heads`.
function acknowledged(handle, heads) {
  return new Promise(resolve => {
    const seen = ({ heads: theirs }) => {
      if (sameHeads(theirs, heads)) {
        handle.off("remote-heads", seen)
        resolve()
      }
    }
    handle.on("remote-heads", seen)
  })
}

async function change(handle, edit) {
  const before = handle.heads()
  handle.change(edit)
  const heads = handle.heads()
  if (sameHeads(before, heads)) return
  await acknowledged(handle, heads)
}

async function device(n) {
  const repo = new Repo({ network: [new WebSocketClientAdapter(url)], sharePolicy: async () => true })
  // A few documents at a time: all 10,000 at once make the server time out and exit.
  const docs = []
  for (let k = 0; k < perDevice; k += 4) {
    const batch = Array.from({ length: Math.min(4, perDevice - k) }, () => repo.create())
    await Promise.all(
      batch.map((handle, i) =>
        change(handle, d => {
          d.template = "propaganda_session"
          d.fields = { place: `Nhà văn hoá bản ${n}-${k + i}`, participants: 0 }
        }),
      ),
    )
    docs.push(...batch)
  }
  return { repo, docs, edits: 0 }
}

const seeding = performance.now()
const sims = await Promise.all(Array.from({ length: devices }, (_, n) => device(n)))
const seeded_s = (performance.now() - seeding) / 1000
const latencies = []
const cpuBefore = process.cpuUsage()
const started = performance.now()
const deadline = started + secs * 1000
await Promise.all(
  sims.map(async sim => {
    while (performance.now() < deadline) {
      const handle = sim.docs[sim.edits % sim.docs.length]
      sim.edits += 1
      const t = performance.now()
      await change(handle, d => {
        d.fields.participants = sim.edits
      })
      latencies.push(performance.now() - t)
    }
  }),
)
const elapsed = (performance.now() - started) / 1000
latencies.sort((a, b) => a - b)
const pct = p => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0
const cpu = process.cpuUsage(cpuBefore)
console.log(
  JSON.stringify({
    stored: devices * perDevice,
    edits_per_sec: latencies.length / elapsed,
    p50_ms: pct(0.5),
    p99_ms: pct(0.99),
    seeded_s,
    devices_cpu_ms_per_edit: (cpu.user + cpu.system) / 1000 / Math.max(1, latencies.length),
    edits: latencies.length,
  }),
)
process.exit(0)
