import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";
import { audit, learning } from "../client";
import type { StudyStatsResponse } from "../gen/mnemo/v1/learning_pb";
import { Bars } from "../chart";
import { ErrorLine, useCall } from "../ui";

const DAY = 86_400_000;
const DAYS = 14;

/** UTC day labels: the `DAYS` days ending today, or starting today. */
function days(from: number): string[] {
  return Array.from({ length: DAYS }, (_, i) => new Date(from + i * DAY).toISOString().slice(5, 10));
}

function today(): number {
  return Math.floor(Date.now() / DAY) * DAY;
}

/** The learner's study: retention, streak, reviews per day (from the
 * history replay) and the cards coming due (from their schedules). */
export function Study() {
  const [figures, setFigures] = useState<StudyStatsResponse | null>(null);
  const [perDay, setPerDay] = useState<number[]>([]);
  const [forecast, setForecast] = useState<number[]>([]);
  const { error, run } = useCall();

  useEffect(() => {
    void run(async () => {
      const start = today() - (DAYS - 1) * DAY;
      setFigures(await learning.studyStats({}));
      const counts = new Array<number>(DAYS).fill(0);
      for await (const e of audit.replayLearningHistory({ from: timestampFromDate(new Date(start)) })) {
        if (e.eventType !== "CardReviewed" || !e.occurredAt) continue;
        const i = Math.floor((timestampDate(e.occurredAt).getTime() - start) / DAY);
        if (i >= 0 && i < DAYS) counts[i] += 1;
      }
      setPerDay(counts);
      const due = new Array<number>(DAYS).fill(0);
      for (const c of (await learning.listCards({ limit: 5000 })).cards) {
        if (c.suspended || c.deleted || !c.schedule?.due) continue;
        const i = Math.max(0, Math.floor((timestampDate(c.schedule.due).getTime() - today()) / DAY));
        if (i < DAYS) due[i] += 1;
      }
      setForecast(due);
    });
  }, []);

  const retention = figures?.retention;
  return (
    <section aria-labelledby="study-title">
      <h1 id="study-title">Study</h1>
      <ErrorLine error={error} />
      {figures && (
        <dl class="counters">
          <div>
            <dt>reviews</dt>
            <dd data-counter="reviews">{String(figures.reviews)}</dd>
          </div>
          <div>
            <dt>today</dt>
            <dd>{String(figures.reviewsToday)}</dd>
          </div>
          <div>
            <dt>retention</dt>
            <dd>{retention === undefined ? "—" : `${(retention * 100).toFixed(0)} %`}</dd>
          </div>
          <div>
            <dt>streak</dt>
            <dd>{String(figures.currentStreakDays)} d</dd>
          </div>
          <div>
            <dt>per day</dt>
            <dd>{figures.reviewsPerDay.toFixed(1)}</dd>
          </div>
        </dl>
      )}
      <h2>Reviews per day</h2>
      <Bars
        label={`Reviews per day, the last ${DAYS} days: ${perDay.join(", ")}`}
        labels={days(today() - (DAYS - 1) * DAY)}
        series={[{ name: "reviews", values: perDay }]}
      />
      <h2>Cards coming due</h2>
      <Bars
        label={`Cards due per day, the next ${DAYS} days: ${forecast.join(", ")}`}
        labels={days(today())}
        series={[{ name: "due", values: forecast }]}
      />
    </section>
  );
}
