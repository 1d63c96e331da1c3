import { timestampDate } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";
import { explain, learning, qa } from "../client";
import { Stage } from "../gen/mnemo/v1/documents_pb";
import type { LearningCard } from "../gen/mnemo/v1/learning_pb";
import { useLibrary } from "../hooks";
import { ErrorLine, useCall } from "../ui";

function due(c: LearningCard): string {
  return c.schedule?.due ? timestampDate(c.schedule.due).toLocaleString() : "";
}

/** One card's row: edit front and back in place, suspend or resume. */
function CardRow({ card, changed, onError }: { card: LearningCard; changed: (seq: bigint) => void; onError: (m: string) => void }) {
  const [editing, setEditing] = useState(false);
  const [front, setFront] = useState(card.front);
  const [back, setBack] = useState(card.back);
  const act = async (f: () => Promise<{ sequence: bigint }>) => {
    try {
      changed((await f()).sequence);
    } catch (e) {
      onError(explain(e));
    }
  };
  if (editing) {
    return (
      <li class="card editing">
        <label>
          Front
          <textarea rows={2} value={front} onInput={(e) => setFront(e.currentTarget.value)} />
        </label>
        <label>
          Back
          <textarea rows={2} value={back} onInput={(e) => setBack(e.currentTarget.value)} />
        </label>
        <div class="actions">
          <button
            type="button"
            onClick={() => {
              setEditing(false);
              void act(() => learning.editCard({ cardId: card.cardId, deck: card.deck, front, back, source: card.source }));
            }}
          >
            Save
          </button>
          <button type="button" onClick={() => setEditing(false)}>
            Cancel
          </button>
        </div>
      </li>
    );
  }
  return (
    <li class={`card ${card.suspended ? "suspended" : ""}`}>
      <div class="front">{card.front}</div>
      <div class="back">{card.back}</div>
      <div class="counts">
        {card.deck} · {card.reviews} reviews{card.suspended ? " · suspended" : ` · due ${due(card)}`}
      </div>
      <div class="actions">
        <button type="button" onClick={() => setEditing(true)}>
          Edit
        </button>
        {card.suspended ? (
          <button type="button" onClick={() => act(() => learning.resumeCard({ cardId: card.cardId }))}>
            Resume
          </button>
        ) : (
          <button type="button" onClick={() => act(() => learning.suspendCard({ cardId: card.cardId }))}>
            Suspend
          </button>
        )}
      </div>
    </li>
  );
}

/** Cards: generate them from an indexed document, list, edit, suspend. */
export function Cards() {
  const lib = useLibrary();
  const indexed = [...lib.docs.values()].filter((d) => d.stage === Stage.INDEXED);
  const [documentId, setDocumentId] = useState("");
  const [cards, setCards] = useState<LearningCard[]>([]);
  const [seen, setSeen] = useState(0n);
  const [note, setNote] = useState("");
  const { busy, error, setError, run: call } = useCall();

  useEffect(() => {
    learning
      .listCards({ minSequence: seen, limit: 500 })
      .then((r) => setCards(r.cards))
      .catch((e) => setError(explain(e)));
  }, [seen]);

  function generate(e: Event) {
    e.preventDefault();
    const id = documentId || indexed[0]?.id;
    if (!id) return;
    void call(async () => {
      const r = await qa.generateCards({ documentId: id, max: 20 });
      const made = r.cards.filter((c) => c.created).length;
      setNote(`${made} new card${made === 1 ? "" : "s"} (${r.cards.length} from this document in all).`);
      setSeen(r.cards.reduce((m, c) => (c.sequence > m ? c.sequence : m), seen));
    });
  }

  return (
    <section aria-labelledby="cards-title">
      <h1 id="cards-title">Cards</h1>
      <form class="generate" onSubmit={generate}>
        <label>
          Document
          <select value={documentId} onChange={(e) => setDocumentId(e.currentTarget.value)}>
            {indexed.map((d) => (
              <option value={d.id}>{d.filename}</option>
            ))}
          </select>
        </label>
        <button type="submit" disabled={busy || indexed.length === 0}>
          Generate cards
        </button>
      </form>
      {note && <p role="status">{note}</p>}
      <ErrorLine error={error} />
      <ul class="cards" aria-label="Your cards">
        {cards
          .filter((c) => !c.deleted)
          .map((c) => (
            <CardRow key={`${c.cardId}/${c.lastSequence}`} card={c} changed={(s) => setSeen(s)} onError={setError} />
          ))}
      </ul>
      {cards.length === 0 && <p>No cards yet: generate some from an indexed document.</p>}
    </section>
  );
}
