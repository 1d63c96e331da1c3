import { timestampDate } from "@bufbuild/protobuf/wkt";
import { useEffect, useRef, useState } from "preact/hooks";
import { explain, learning } from "../client";
import type { LearningCard } from "../gen/mnemo/v1/learning_pb";

const RATINGS = [
  { rating: 1, word: "Again" },
  { rating: 2, word: "Hard" },
  { rating: 3, word: "Good" },
  { rating: 4, word: "Easy" },
];

function inWords(ms: number): string {
  const min = Math.round(ms / 60_000);
  if (min < 60) return `${Math.max(min, 1)} min`;
  const h = Math.round(min / 60);
  if (h < 24) return `${h} h`;
  return `${Math.round(h / 24)} d`;
}

/** A review session over the cards due now: space shows the answer, 1–4
 * rate it (FSRS-6 on the server); each rating button shows when it would
 * bring the card back (PreviewReview), as Anki's do. */
export function Review() {
  const [queue, setQueue] = useState<LearningCard[] | null>(null);
  const [shown, setShown] = useState(false);
  const [done, setDone] = useState<string[]>([]);
  const [error, setError] = useState("");

  useEffect(() => {
    learning
      .dueCards({ limit: 100 })
      .then((r) => setQueue(r.cards))
      .catch((e) => setError(explain(e)));
  }, []);

  const card = queue?.[0];
  // When each rating would bring the card back (FSRS-6, from the server).
  const [nextIn, setNextIn] = useState<Record<number, string>>({});
  useEffect(() => {
    setNextIn({});
    if (!card) return;
    learning
      .previewReview({ cardId: card.cardId })
      .then((r) => {
        const now = Date.now();
        const got: Record<number, string> = {};
        for (const p of r.previews) {
          if (p.schedule?.due) got[p.rating] = inWords(timestampDate(p.schedule.due).getTime() - now);
        }
        setNextIn(got);
      })
      .catch(() => setNextIn({}));
  }, [card?.cardId]);

  async function rate(rating: number) {
    if (!card || !shown) return;
    try {
      const r = await learning.submitReview({ cardId: card.cardId, reviewId: crypto.randomUUID(), rating });
      const next = r.schedule?.due ? timestampDate(r.schedule.due).getTime() - Date.now() : 0;
      const word = RATINGS[rating - 1].word;
      setDone((d) => [...d, `${card.front.slice(0, 60)}: ${word}, back in ${inWords(next)}`]);
      setQueue((q) => (q ? q.slice(1) : q));
      setShown(false);
    } catch (e) {
      setError(explain(e));
    }
  }

  // The keys act on what is on screen now: the listener, added once,
  // reads this render's `rate` (an effect would swap it in only after the
  // next paint, and a quick key would meet the last card's state).
  const latest = useRef(rate);
  latest.current = rate;
  useEffect(() => {
    const key = (e: KeyboardEvent) => {
      if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement) return;
      if (e.key === " ") {
        e.preventDefault();
        setShown(true);
      } else if (["1", "2", "3", "4"].includes(e.key)) {
        void latest.current(Number(e.key));
      }
    };
    addEventListener("keydown", key);
    return () => removeEventListener("keydown", key);
  }, []);

  return (
    <section aria-labelledby="review-title">
      <h1 id="review-title">Review</h1>
      {error && (
        <p class="reason" role="alert">
          {error}
        </p>
      )}
      {queue === null && <p>Loading the cards due…</p>}
      {queue !== null && !card && <p role="status">Nothing due now{done.length ? `: ${done.length} reviewed` : ""}.</p>}
      {card && (
        <div class="review" data-card-id={card.cardId}>
          <p class="counts">{queue?.length} due</p>
          <div class="front">{card.front}</div>
          {shown ? (
            <>
              <div class="back">{card.back}</div>
              <div class="actions ratings">
                {RATINGS.map((r) => (
                  <button type="button" onClick={() => rate(r.rating)} aria-keyshortcuts={String(r.rating)}>
                    {r.rating} {r.word}
                    {nextIn[r.rating] && <span class="interval"> · {nextIn[r.rating]}</span>}
                  </button>
                ))}
              </div>
            </>
          ) : (
            <button type="button" onClick={() => setShown(true)} aria-keyshortcuts="Space">
              Show answer (space)
            </button>
          )}
        </div>
      )}
      {done.length > 0 && (
        <ol class="reviewed" aria-label="Reviewed">
          {done.map((d) => (
            <li>{d}</li>
          ))}
        </ol>
      )}
    </section>
  );
}
