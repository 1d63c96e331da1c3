import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";
import { audit } from "../client";
import type { LearningHistoryEvent } from "../gen/mnemo/v1/audit_pb";
import { ErrorLine, useCall } from "../ui";

/** The learner's own event timeline, replayed from the log, as of a
 * chosen date (nothing after it). */
export function History() {
  const [asOf, setAsOf] = useState("");
  const [events, setEvents] = useState<LearningHistoryEvent[]>([]);
  const { busy, error, run } = useCall();

  function load(until: string) {
    void run(async () => {
      const got: LearningHistoryEvent[] = [];
      const end = until ? new Date(`${until}T23:59:59.999Z`) : undefined;
      for await (const e of audit.replayLearningHistory({ until: end ? timestampFromDate(end) : undefined })) {
        got.push(e);
      }
      setEvents(got.reverse());
    });
  }
  useEffect(() => load(""), []);

  return (
    <section aria-labelledby="history-title">
      <h1 id="history-title">History</h1>
      <form
        class="generate"
        onSubmit={(e) => {
          e.preventDefault();
          load(asOf);
        }}
      >
        <label>
          As of
          <input type="date" value={asOf} onInput={(e) => setAsOf(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={busy}>
          Replay
        </button>
      </form>
      <ErrorLine error={error} />
      <p class="counts" role="status">
        {busy ? "Replaying…" : `${events.length} events${asOf ? ` up to ${asOf}` : ""}, newest first.`}
      </p>
      <ol class="timeline" aria-label="Timeline">
        {events.map((e) => (
          <li key={e.eventId}>
            <time dateTime={e.occurredAt ? timestampDate(e.occurredAt).toISOString() : undefined}>
              {e.occurredAt ? timestampDate(e.occurredAt).toLocaleString() : ""}
            </time>{" "}
            <strong>{e.eventType}</strong> <span class="counts">{e.aggregateType}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}
