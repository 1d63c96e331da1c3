// Moving between the app's pages without reloading: the address changes,
// and the shell (main.tsx) hears it as it hears the back button.
export function navigate(to: string): void {
  history.pushState(null, "", to);
  dispatchEvent(new PopStateEvent("popstate"));
}

/** A link's click, taken over unless the learner asked for a new tab. */
export function follow(e: MouseEvent, to: string): void {
  if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(to);
}

/** The viewer's address for a document at a page. */
export function viewAt(documentId: string, page: number): string {
  return `/view?doc=${encodeURIComponent(documentId)}&page=${page}`;
}
