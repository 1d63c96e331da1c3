// Plots, drawn by Chart.js on a canvas the page labels for screen readers
// (the numbers are also in a table or text beside each plot).
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  Tooltip,
  type ChartDataset,
} from "chart.js";
import { useEffect, useRef } from "preact/hooks";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

const COLOURS = ["#1f3a5f", "#e09f3e", "#9b1c1c", "#1d6b3a"];

/** A bar chart of `series` over `labels`. */
export function Bars({
  label,
  labels,
  series,
}: {
  label: string;
  labels: string[];
  series: { name: string; values: number[] }[];
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (!canvas.current) return;
    const datasets: ChartDataset<"bar">[] = series.map((s, i) => ({
      label: s.name,
      data: s.values,
      backgroundColor: COLOURS[i % COLOURS.length],
    }));
    const chart = new Chart(canvas.current, {
      type: "bar",
      data: { labels, datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        plugins: { legend: { display: series.length > 1 } },
        scales: { y: { beginAtZero: true } },
      },
    });
    return () => chart.destroy();
  }, [JSON.stringify([labels, series])]);
  return (
    <div class="chart">
      <canvas ref={canvas} role="img" aria-label={label} />
    </div>
  );
}
