// mnemo's web app: the shell (sign-in, navigation) and its pages.
import { render, type JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { onTokenRefused } from "./client";
import { Ask } from "./pages/Ask";
import { Cards } from "./pages/Cards";
import { Dashboard } from "./pages/Dashboard";
import { Documents } from "./pages/Documents";
import { History } from "./pages/History";
import { Review } from "./pages/Review";
import { Search } from "./pages/Search";
import { Study } from "./pages/Study";
import { Upload } from "./pages/Upload";
import { navigate } from "./router";
import { claims, signIn, signOut, takeTokenFromAddress, token } from "./session";
import "./style.css";

const PAGES = [
  { path: "/", title: "Upload", page: Upload },
  { path: "/documents", title: "Documents", page: Documents },
  { path: "/search", title: "Search", page: Search },
  { path: "/ask", title: "Ask", page: Ask },
  { path: "/cards", title: "Cards", page: Cards },
  { path: "/review", title: "Review", page: Review },
  { path: "/dashboard", title: "Dashboard", page: Dashboard },
  { path: "/study", title: "Study", page: Study },
  { path: "/history", title: "History", page: History },
];

/** The document viewer brings pdf.js (most of the app's size): loaded
 * the first time a citation is opened. */
function LazyViewer() {
  const [Viewer, setViewer] = useState<null | (() => JSX.Element)>(null);
  useEffect(() => {
    void import("./pages/Viewer").then((m) => setViewer(() => m.Viewer));
  }, []);
  return Viewer ? <Viewer /> : <p role="status">Loading the viewer…</p>;
}

/** Pages reached by links, not in the navigation. */
const OTHER_PAGES = [{ path: "/view", title: "Document", page: LazyViewer }];

function usePath(): [string, (p: string) => void] {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const back = () => setPath(location.pathname);
    addEventListener("popstate", back);
    return () => removeEventListener("popstate", back);
  }, []);
  return [path, navigate];
}

function SignIn({ message, done }: { message: string; done: () => void }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState(message);
  return (
    <main class="sign-in">
      <h1>Sign in to mnemo</h1>
      <p>
        Open the link <code>mnemo token issue --owner NAME --link</code> prints, or paste a token here.
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const refused = signIn(value);
          if (refused) setError(refused);
          else done();
        }}
      >
        <label>
          Token
          <input type="password" autoComplete="off" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
        </label>
        <button type="submit">Sign in</button>
      </form>
      {error && (
        <p class="reason" role="alert">
          {error}
        </p>
      )}
    </main>
  );
}

function App() {
  const [signedIn, setSignedIn] = useState(token() !== null);
  const [message, setMessage] = useState("");
  const [path, go] = usePath();
  useEffect(
    () =>
      onTokenRefused(() => {
        signOut();
        setMessage("The server refused your token (expired or not valid): sign in again.");
        setSignedIn(false);
      }),
    [],
  );
  if (!signedIn) return <SignIn message={message} done={() => location.reload()} />;
  const current = [...PAGES, ...OTHER_PAGES].find((p) => p.path === path) ?? PAGES[0];
  const Page = current.page;
  return (
    <>
      <header>
        <span class="brand">mnemo</span>
        <nav aria-label="Main">
          {PAGES.map((p) => (
            <a
              href={p.path}
              aria-current={p === current ? "page" : undefined}
              onClick={(e) => {
                e.preventDefault();
                go(p.path);
              }}
            >
              {p.title}
            </a>
          ))}
        </nav>
        <span class="who">
          {claims()?.sub ?? ""}
          <button
            type="button"
            onClick={() => {
              signOut();
              location.assign("/");
            }}
          >
            Sign out
          </button>
        </span>
      </header>
      <main>
        <Page />
      </main>
    </>
  );
}

takeTokenFromAddress();
const root = document.getElementById("app");
if (root) render(<App />, root);
