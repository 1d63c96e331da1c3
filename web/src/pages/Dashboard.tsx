import { useEffect, useState } from "preact/hooks";
import { stats as statsClient } from "../client";
import type { Stats } from "../gen/mnemo/v1/stats_pb";
import { Bars } from "../chart";
import { useLibrary } from "../hooks";
import { ErrorLine, useCall } from "../ui";

function mib(bytes: bigint): string {
  return `${(Number(bytes) / 1048576).toFixed(1)} MiB`;
}

/** The learner's documents by state and the pipeline's per-stage timing
 * and error rate (the stats projection), refreshed as progress arrives. */
export function Dashboard() {
  const lib = useLibrary();
  const [stats, setStats] = useState<Stats | null>(null);
  const { error, run } = useCall();
  // Progress changes the counters: read them again, at most once a second.
  useEffect(() => {
    const t = setTimeout(() => void run(async () => setStats(await statsClient.getStats({}))), stats ? 1000 : 0);
    return () => clearTimeout(t);
  }, [lib.version]);
  const totals = stats?.totals;
  const stages = stats?.stages ?? [];
  return (
    <section aria-labelledby="dashboard-title">
      <h1 id="dashboard-title">Dashboard</h1>
      <ErrorLine error={error} />
      {totals && (
        <dl class="counters">
          {(
            [
              ["documents", totals.total],
              ["indexed", totals.indexed],
              ["processing", totals.processing],
              ["queued", totals.queued],
              ["failed", totals.failed],
              ["cancelled", totals.cancelled],
            ] as const
          ).map(([name, n]) => (
            <div>
              <dt>{name}</dt>
              <dd data-counter={name}>{String(n)}</dd>
            </div>
          ))}
        </dl>
      )}
      {stages.length > 0 && (
        <>
          <h2>Time per stage</h2>
          <Bars
            label="Seconds per stage, p50 and p95"
            labels={stages.map((s) => s.stage)}
            series={[
              { name: "p50 (s)", values: stages.map((s) => s.p50Seconds) },
              { name: "p95 (s)", values: stages.map((s) => s.p95Seconds) },
            ]}
          />
          <div class="table-scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Stage</th>
                  <th scope="col">Finished</th>
                  <th scope="col">Running</th>
                  <th scope="col">p50</th>
                  <th scope="col">p95</th>
                  <th scope="col">Error rate</th>
                </tr>
              </thead>
              <tbody>
                {stages.map((s) => (
                  <tr>
                    <td>{s.stage}</td>
                    <td>{String(s.finished)}</td>
                    <td>{String(s.running)}</td>
                    <td>{s.p50Seconds.toFixed(2)} s</td>
                    <td>{s.p95Seconds.toFixed(2)} s</td>
                    <td>{(s.errorRate * 100).toFixed(1)} %</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
      {stats?.quota && (
        <p class="counts">
          Your quota: {String(stats.quota.documents)} of {String(stats.quota.maxDocuments)} documents,{" "}
          {mib(stats.quota.bytes)} of {mib(stats.quota.maxBytes)}.
        </p>
      )}
    </section>
  );
}
