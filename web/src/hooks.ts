import { useEffect, useState } from "preact/hooks";
import { library } from "./library";

/** Re-renders the caller whenever the library changes. */
export function useLibrary(): typeof library {
  const [, setTick] = useState(0);
  useEffect(() => {
    library.start();
    return library.subscribe(() => setTick((t) => t + 1));
  }, []);
  return library;
}
