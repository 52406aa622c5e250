// A hostile officer's client: takes a record document as the server sent it, makes one
// forged change to it with the npm @automerge/automerge (an implementation the server does not
// share), and writes the new changes as a bundle for the sync protocol.
//
//   node attack.mjs <attack> <document in> <bundle out> <actor hex> <author json> [<arg>]
//
// Prints the document's new heads (JSON) on stdout. `new_record` makes a document from
// nothing (the input file is ignored).
import * as A from "@automerge/automerge";
import { readFileSync, writeFileSync } from "node:fs";

const [attack, input, output, actor, author, arg] = process.argv.slice(2);
const str = (s) => new A.ImmutableString(s);
const me = JSON.parse(author).user;
const now = () => new Date(1_764_000_000_000);

// An event as the phone writes one: every text an immutable string (a plain JS string would
// be a Text object, which the server does not read as an event). Whole numbers are stored as
// integers.
const event = (kind, by) => ({ kind: str(kind), by: str(by), at: now(), heads: [] });
const copy = (e) => ({
  kind: str(e.kind.toString()),
  by: str(e.by.toString()),
  at: new Date(e.at.getTime()),
  ...(e.comment ? { comment: str(e.comment.toString()) } : {}),
  heads: e.heads.map((h) => str(h.toString())),
});

const attacks = {
  // The workflow log rewritten.
  delete_last_event: (d) => d.events.splice(d.events.length - 1, 1),
  delete_events: (d) => delete d.events,
  break_event: (d) => { d.events[0].at = str("yesterday"); },
  change_event_kind: (d) => { d.events[d.events.length - 1].kind = str("approve"); },
  unknown_kind: (d) => d.events.push(event("promote", me)),
  // Events forged by copying, or appended without the role.
  copy_event: (d) => d.events.push(copy(d.events[Number(arg)])),
  copy_event_as_me: (d) => d.events.push({ ...copy(d.events[Number(arg)]), by: str(me) }),
  append: (d) => d.events.push(event(arg, me)),
  // An amendment that carries more than answers.
  edit_and_delete_last_event: (d) => {
    d.fields.participants = 99;
    d.events.splice(d.events.length - 1, 1);
  },
  // Identity.
  relabel_period: (d) => { d.meta.period = str(arg); },
  move_unit: (d) => { d.meta.unit_code = str(arg); },
  edit_answer: (d) => { d.fields.participants = Number(arg); },
};

let doc;
let bundleFrom = [];
if (attack === "new_record") {
  // A new record that names someone else as its creator (arg: who).
  doc = A.change(A.init({ actor }), { message: author, time: 1_764_000_000 }, (d) => {
    const [id, template, unit, createdBy] = arg.split(",");
    d.meta = {
      record_id: str(id), template_id: str(template), template_version: 1, unit_code: str(unit),
      created_by: str(createdBy), created_at: now(), device_id: str(JSON.parse(author).device),
    };
    d.fields = { participants: 5 };
    d.attachments = {};
    d.events = [];
  });
} else {
  const base = A.load(new Uint8Array(readFileSync(input)), { actor });
  bundleFrom = A.getHeads(base);
  const forge = attacks[attack];
  if (!forge) throw new Error(`unknown attack ${attack}`);
  doc = A.change(base, { message: author, time: 1_764_000_100 }, forge);
}
const hashes = A.getChangesMetaSince(doc, bundleFrom).map((c) => c.hash);
writeFileSync(output, A.saveBundle(doc, hashes));
process.stdout.write(JSON.stringify(A.getHeads(doc)));
