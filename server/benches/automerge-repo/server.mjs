// The automerge-repo sync server, set up as automerge-repo-sync-server sets it up: a Repo with
// file storage that accepts every document and shares nothing unasked. It checks no rights.
//
//     node server.mjs PORT STORAGE_DIR
import { Repo } from "@automerge/automerge-repo"
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"
import { WebSocketServer } from "ws"

const [port, dir] = process.argv.slice(2)
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(port) })
new Repo({
  network: [new NodeWSServerAdapter(wss)],
  storage: new NodeFSStorageAdapter(dir),
  peerId: `storage-server-${port}`,
  sharePolicy: async () => false,
})
wss.on("listening", () => console.log("ready"))
