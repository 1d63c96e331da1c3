// Small pieces the pages share.
import { useState } from "preact/hooks";
import { explain } from "./client";

/** "p. 3" or "pp. 3–4" (nothing for a text without pages). */
export function pagesOf(start: number, end: number): string {
  if (start === 0) return "";
  return end > start ? `pp. ${start}–${end}` : `p. ${start}`;
}

/** A call the learner started: whether it runs, and its error in words. */
export function useCall(): {
  busy: boolean;
  error: string;
  setError: (m: string) => void;
  run: (f: () => Promise<void>) => Promise<void>;
} {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  async function run(f: () => Promise<void>) {
    setBusy(true);
    setError("");
    try {
      await f();
    } catch (e) {
      setError(explain(e));
    } finally {
      setBusy(false);
    }
  }
  return { busy, error, setError, run };
}

/** The error of a call, announced. */
export function ErrorLine({ error }: { error: string }) {
  return error ? (
    <p class="reason" role="alert">
      {error}
    </p>
  ) : null;
}
