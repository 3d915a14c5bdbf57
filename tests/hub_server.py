"""A small, in-memory Hugging Face Hub for tests: the HTTP routes huggingface_hub 2.x and transformers 5 use to
push (create repo, preupload, NDJSON commit, branches, tags) and to pull (model info, tree, refs, resolve).

    with LocalHub() as hub:                       # binds 127.0.0.1 on an ephemeral port, stops on exit
        env = {"HF_ENDPOINT": hub.url, ...}       # set before huggingface_hub is imported (it reads it once)
        ...
        hub.file_bytes("me/tiny", "config.json", revision="v1")

Scope and simplifications (each one is what the client accepts, read from huggingface_hub 2.4):
* Storage is in memory: blobs by git SHA-1, commits as {path: blob} snapshots; every commit gets a fresh 40-hex sha.
  Branches and tags point at shas; a revision is a branch, a tag or a full commit sha.
* Preupload always answers ``uploadMode: "regular"`` (files come base64 inside the commit), with the remote git oid
  of an existing path so that unchanged files are skipped client-side. No LFS, no Xet, no pull requests.
* ``resolve`` answers 200 directly (no CDN redirect): ETag = git oid, X-Repo-Commit, Content-Length, Range.
* Errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound) as the Hub does, so the client
  raises its typed errors and transformers treats missing optional files as missing.
* Writes need a Bearer token (any, or ``token=`` if given); private repos need one to be read.
* Bounded: request bodies and total storage are capped, the server stops after ``max_lifetime_s`` even if a test
  forgets to stop it, and every request is logged (``hub.requests``); routes it does not know go to
  ``hub.unhandled`` so a test can assert that nothing unexpected was called.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


def git_oid(data: bytes) -> str:
    """The git blob SHA-1 (what the Hub reports as a regular file's oid / ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubError(Exception):
    """An HTTP error answer: status, X-Error-Code (as the Hub sends it) and a message."""

    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.commit = status, message, code, commit


@dataclass
class Commit:
    sha: str
    parent: str | None
    title: str
    message: str
    files: dict[str, str]  # path -> blob oid (a full snapshot: commits are tiny here)
    date: str
    author: str


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    created: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit:
        sha = self.branches.get(revision) or self.tags.get(revision)
        if sha is None and SHA_RE.match(revision) and revision in self.commits:
            sha = revision
        if sha is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[sha]


class LocalHub:
    """The server. ``url`` is its endpoint (``http://127.0.0.1:PORT``); use it as a context manager."""

    def __init__(
        self,
        token: str | None = None,
        user: str = "tester",
        max_body_bytes: int = 64 * 2**20,
        max_total_bytes: int = 512 * 2**20,
        max_lifetime_s: float = 900.0,
    ):
        self.token, self.user = token, user
        self.max_body_bytes, self.max_total_bytes, self.max_lifetime_s = max_body_bytes, max_total_bytes, max_lifetime_s
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.lock = threading.RLock()
        self.requests: collections.deque[tuple[str, str, int]] = collections.deque(maxlen=5000)
        self.unhandled: list[tuple[str, str]] = []
        self._counter = itertools.count()
        self._server: ThreadingHTTPServer | None = None
        self._watchdog: threading.Timer | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the hub first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LocalHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # loopback, ephemeral port
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True).start()
        # a forgotten server must not outlive the test session
        self._watchdog = threading.Timer(self.max_lifetime_s, self.stop)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.cancel()

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ inspection helpers for tests

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        with self.lock:
            return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, str]:
        with self.lock:
            return dict(self.repo(repo_id, repo_type).resolve(revision).files)

    def file_bytes(self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model") -> bytes:
        with self.lock:
            return self.blobs[self.files(repo_id, revision, repo_type)[path]]

    def history(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> list[Commit]:
        """Commits from ``revision`` back to the first, newest first."""
        with self.lock:
            repo = self.repo(repo_id, repo_type)
            commit: Commit | None = repo.resolve(revision)
            out = []
            while commit is not None:
                out.append(commit)
                commit = repo.commits.get(commit.parent) if commit.parent else None
            return out

    # ------------------------------------------------------------------ state changes (under the lock)

    def _new_sha(self, *parts: str) -> str:
        seed = "\0".join((*parts, str(next(self._counter)), repr(time.time())))
        return hashlib.sha1(seed.encode()).hexdigest()

    def _store(self, data: bytes) -> str:
        oid = git_oid(data)
        if oid not in self.blobs:
            if sum(map(len, self.blobs.values())) + len(data) > self.max_total_bytes:
                raise HubError(413, "the test hub is full (max_total_bytes)")
            self.blobs[oid] = data
        return oid

    def _commit(self, repo: Repo, branch: str, files: dict[str, str], title: str, message: str) -> Commit:
        parent = repo.branches.get(branch)
        sha = self._new_sha(repo.repo_id, branch, parent or "", title)
        commit = Commit(sha, parent, title, message, files, _now(), self.user)
        repo.commits[sha] = commit
        repo.branches[branch] = sha
        return commit

    def create_repo(self, repo_id: str, repo_type: str, private: bool) -> tuple[Repo, bool]:
        with self.lock:
            key = (repo_type, repo_id)
            if key in self.repos:
                return self.repos[key], False
            repo = Repo(repo_id, repo_type, private, _now())
            # like the Hub: a new repo has one commit with a .gitattributes on main
            self._commit(repo, "main", {".gitattributes": self._store(GITATTRIBUTES)}, "initial commit", "")
            self.repos[key] = repo
            return repo, True


class _Handler(BaseHTTPRequestHandler):
    hub: LocalHub
    timeout = 60  # seconds of socket inactivity before a connection is dropped
    server_version = "LocalHub/1.0"

    def log_message(self, format, *args):  # quiet: the hub keeps its own request log
        pass

    # ------------------------------------------------------------------ plumbing

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PUT(self):
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        status = 500
        try:
            status = self._route(method, segments)
        except HubError as error:
            status = error.status
            headers = {"X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            if error.commit:
                headers["X-Repo-Commit"] = error.commit
            self._send(error.status, {"error": error.message}, headers, head=method == "HEAD")
        except Exception as error:  # a bug in the hub: answer 500 and keep serving
            self._send(500, {"error": f"{type(error).__name__}: {error}"}, head=method == "HEAD")
        self.hub.requests.append((method, split.path, status))

    def _send(self, status: int, body, headers: dict | None = None, head: bool = False, content_type=None) -> int:
        if isinstance(body, (dict, list)):
            data, content_type = json.dumps(body).encode(), "application/json"
        else:
            data = body
        self.send_response(status)
        self.send_header("Content-Type", content_type or "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(data)
        return status

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, size = [], 0
            while True:
                length = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if length == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                size += length
                if size > self.hub.max_body_bytes:
                    raise HubError(413, "request body too large for the test hub")
                chunks.append(self.rfile.read(length))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.hub.max_body_bytes:
            raise HubError(413, "request body too large for the test hub")
        return self.rfile.read(length) if length else b""

    def _json(self) -> dict:
        body = self._body()
        try:
            return json.loads(body) if body else {}
        except ValueError as error:
            raise HubError(400, f"invalid JSON body: {error}") from error

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return False
        return self.hub.token is None or header[7:].strip() == self.hub.token

    def _require_write(self) -> None:
        if not self._authorized():
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self._authorized()):
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        return repo

    # ------------------------------------------------------------------ routes

    def _route(self, method: str, s: list[str]) -> int:
        head = method == "HEAD"
        with self.hub.lock:  # one request at a time on the state: simple and enough for tests
            if s[:1] == ["api"]:
                return self._api(method, s[1:])
            # file downloads: /{ns}/{name}/resolve/{rev}/{path} (datasets/ and spaces/ prefixed)
            repo_type = "model"
            if s and s[0] in ("datasets", "spaces"):
                repo_type, s = REPO_TYPES[s[0]], s[1:]
            if len(s) >= 5 and s[2] == "resolve" and method in ("GET", "HEAD"):
                return self._resolve(repo_type, f"{s[0]}/{s[1]}", s[3], "/".join(s[4:]), head)
        self.hub.unhandled.append((method, self.path))
        raise HubError(404, f"route not implemented by the test hub: {method} {self.path}")

    def _api(self, method: str, s: list[str]) -> int:
        if method == "GET" and s == ["whoami-v2"]:
            if not self._authorized():
                raise HubError(401, "Invalid credentials in Authorization header")
            user = self.hub.user
            return self._send(200, {"type": "user", "name": user, "fullname": user, "orgs": [], "auth": {}})
        if method == "GET" and s == ["agent-harnesses"]:
            # huggingface_hub fetches this registry (best effort) to tag its user agent: an empty one
            return self._send(200, {"standardEnvVars": [], "harnesses": {}})
        if method == "POST" and s == ["validate-yaml"]:
            # huggingface_hub POSTs every committed README.md here first; check only the front matter fences
            content = self._json().get("content", "")
            if content.startswith("---") and content.count("\n---") < 1:
                raise HubError(400, "README.md front matter is not closed")
            return self._send(200, {"errors": [], "warnings": []})
        if method == "POST" and s == ["repos", "create"]:
            return self._create_repo(self._json())
        if method == "DELETE" and s == ["repos", "delete"]:
            self._require_write()
            payload = self._json()
            repo_id = f"{payload.get('organization') or self.hub.user}/{payload['name']}"
            self._repo(payload.get("type") or "model", repo_id)
            del self.hub.repos[(payload.get("type") or "model", repo_id)]
            return self._send(200, {})
        if len(s) >= 3 and s[0] in REPO_TYPES:
            repo = self._repo(REPO_TYPES[s[0]], f"{s[1]}/{s[2]}")
            return self._repo_api(method, repo, s[3:])
        self.hub.unhandled.append((method, self.path))
        raise HubError(404, f"route not implemented by the test hub: {method} {self.path}")

    def _create_repo(self, payload: dict) -> int:
        self._require_write()
        name = payload.get("name") or ""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", name):
            raise HubError(400, f"invalid repo name: {name!r}")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.hub.user}/{name}"
        repo, created = self.hub.create_repo(repo_id, repo_type, payload.get("visibility") == "private")
        body = {"url": f"{self.hub.url}/{URL_PREFIXES[repo_type]}{repo_id}", "name": repo_id, "id": repo_id}
        if not created:
            body["error"] = "You already created this model repo"
            return self._send(409, body, {"X-Error-Message": body["error"]})
        return self._send(200, body)

    def _repo_api(self, method: str, repo: Repo, s: list[str]) -> int:
        action, rest = (s[0], s[1:]) if s else ("", [])
        if method == "GET" and action in ("", "revision"):
            commit = repo.resolve(rest[0] if rest else "main")
            return self._send(200, self._info(repo, commit))
        if method == "GET" and action == "refs":

            def refs(kind, mapping):
                return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": sha} for n, sha in mapping.items()]

            body = {"branches": refs("heads", repo.branches), "tags": refs("tags", repo.tags), "converts": []}
            return self._send(200, body | {"pullRequests": []})
        if method == "GET" and action == "tree" and rest:
            commit = repo.resolve(rest[0])
            recursive = self.query.get("recursive", "").lower() in ("1", "true")
            expand = self.query.get("expand", "").lower() in ("1", "true")
            return self._send(200, self._tree(repo, commit, "/".join(rest[1:]).strip("/"), recursive, expand))
        if method == "POST" and action == "paths-info" and rest:
            commit = repo.resolve(rest[0])
            form = parse_qs(self._body().decode())
            expand = form.get("expand", ["false"])[-1].lower() in ("1", "true")
            entries = [
                e for p in form.get("paths", []) for e in self._tree(repo, commit, p.strip("/"), False, expand, True)
            ]
            return self._send(200, entries)
        if method == "GET" and action == "commits" and rest:
            history = self.hub.history(repo.repo_id, rest[0], repo.repo_type)
            return self._send(200, [self._commit_json(c) for c in history])
        if method == "POST" and action == "preupload" and rest:
            return self._preupload(repo, rest[0])
        if method == "POST" and action == "commit" and rest:
            return self._commit(repo, rest[0])
        if action == "branch" and rest and method in ("POST", "DELETE"):
            return self._branch(method, repo, "/".join(rest))
        if action == "tag" and rest and method in ("POST", "DELETE"):
            return self._tag(method, repo, "/".join(rest))
        self.hub.unhandled.append((method, self.path))
        raise HubError(404, f"route not implemented by the test hub: {method} {self.path}")

    # ------------------------------------------------------------------ read side

    def _info(self, repo: Repo, commit: Commit) -> dict:
        blobs = self.query.get("blobs", "").lower() in ("1", "true")
        siblings = []
        for path, oid in sorted(commit.files.items()):
            entry = {"rfilename": path}
            if blobs:
                entry |= {"size": len(self.hub.blobs[oid]), "blobId": oid}
            siblings.append(entry)
        tags = []
        if "config.json" in commit.files and b'"auto_map"' in self.hub.blobs[commit.files["config.json"]]:
            tags.append("custom_code")  # as the Hub does for repos with remote code
        card = self.hub.blobs.get(commit.files.get("README.md", ""), b"").decode(errors="replace")
        library = re.search(r"^library_name:\s*(\S+)", card, re.M)
        pipeline_tag = re.search(r"^pipeline_tag:\s*(\S+)", card, re.M)
        return {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.sha,
            "lastModified": commit.date,
            "createdAt": repo.created,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": tags,
            "library_name": library.group(1) if library else None,
            "pipeline_tag": pipeline_tag.group(1) if pipeline_tag else None,
            "siblings": siblings,
            "usedStorage": sum(len(self.hub.blobs[o]) for o in commit.files.values()),
        }

    def _last_commit(self, repo: Repo, commit: Commit, path: str) -> dict:
        """The newest commit that changed ``path`` (or anything under it)."""

        def state(c: Commit) -> list:
            return sorted((p, o) for p, o in c.files.items() if p == path or p.startswith(path + "/"))

        current = commit
        while current.parent and state(repo.commits[current.parent]) == state(current):
            current = repo.commits[current.parent]
        return {"id": current.sha, "title": current.title, "date": current.date}

    def _tree(self, repo: Repo, commit: Commit, path: str, recursive: bool, expand: bool, exact=False) -> list:
        files = commit.files
        if path and path in files:
            if not exact:
                raise HubError(404, f"{path} is a file, not a folder", "EntryNotFound", commit.sha)
            matches = {path: files[path]}
        else:
            prefix = f"{path}/" if path else ""
            under = {p: o for p, o in files.items() if p.startswith(prefix)}
            if path and not under:
                if exact:
                    return []
                raise HubError(404, f"{path} does not exist at {commit.sha}", "EntryNotFound", commit.sha)
            if exact:
                return [{"type": "directory", "oid": git_oid(path.encode()), "path": path}]
            matches = {}
            for p, oid in under.items():
                parts = p[len(prefix) :].split("/")
                if recursive:
                    for depth in range(1, len(parts)):
                        matches.setdefault(prefix + "/".join(parts[:depth]), None)
                    matches[p] = oid
                else:
                    matches[prefix + parts[0]] = oid if len(parts) == 1 else None
        entries = []
        for p, oid in sorted(matches.items()):
            if oid is None:
                entry = {"type": "directory", "oid": git_oid(p.encode()), "path": p}
            else:
                entry = {"type": "file", "oid": oid, "size": len(self.hub.blobs[oid]), "path": p}
            if expand:
                entry["lastCommit"] = self._last_commit(repo, commit, p)
            entries.append(entry)
        return entries

    @staticmethod
    def _commit_json(c: Commit) -> dict:
        return {"id": c.sha, "title": c.title, "message": c.message, "authors": [{"user": c.author}], "date": c.date}

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str, head: bool) -> int:
        repo = self._repo(repo_type, repo_id)
        commit = repo.resolve(revision)
        oid = commit.files.get(path)
        if oid is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", commit.sha)
        data = self.hub.blobs[oid]
        headers = {"ETag": f'"{oid}"', "X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
        status = 200
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "").strip())
        if match and not head:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data):
                raise HubError(416, "range not satisfiable")
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        content_type = "text/plain; charset=utf-8" if path.endswith((".json", ".md", ".py", ".txt")) else None
        return self._send(status, data, headers, head=head, content_type=content_type)

    # ------------------------------------------------------------------ write side

    def _preupload(self, repo: Repo, revision: str) -> int:
        self._require_write()
        payload = self._json()
        existing = repo.resolve(revision).files if revision in repo.branches else {}
        files = [
            # regular for everything: the bytes come base64 in the commit; oid lets the client skip unchanged files
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": existing.get(f["path"])}
            for f in payload.get("files", [])
        ]
        return self._send(200, {"files": files, "commitOid": repo.branches.get(revision)})

    def _commit(self, repo: Repo, branch: str) -> int:
        self._require_write()
        if self.query.get("create_pr") in ("1", "true"):
            raise HubError(400, "pull requests are not supported by the test hub")
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch} (commits go to a branch)", "RevisionNotFound")
        header, operations = None, []
        for line in self._body().splitlines():
            if line.strip():
                item = json.loads(line)
                if item.get("key") == "header":
                    header = item["value"]
                else:
                    operations.append(item)
        if header is None or not header.get("summary"):
            raise HubError(400, "the commit has no header / summary")
        files = dict(repo.commits[repo.branches[branch]].files)
        parent = header.get("parentCommit")
        if parent and parent != repo.branches[branch]:
            raise HubError(412, f"parentCommit {parent} is not the head of {branch}")
        for item in operations:
            key, value = item.get("key"), item.get("value", {})
            path = value.get("path", "").strip("/")
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"unsupported encoding {value.get('encoding')!r}")
                files[path] = self.hub._store(base64.b64decode(value["content"]))
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            elif key == "deletedFolder":
                files = {p: o for p, o in files.items() if not p.startswith(path + "/")}
            else:  # lfsFile / copies: never requested, since preupload answers "regular"
                raise HubError(400, f"commit operation {key!r} is not supported by the test hub")
        commit = self.hub._commit(repo, branch, files, header["summary"], header.get("description", ""))
        url = f"{self.hub.url}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}/commit/{commit.sha}"
        return self._send(200, {"success": True, "commitOid": commit.sha, "commitUrl": url, "hookOutput": ""})

    def _branch(self, method: str, repo: Repo, name: str) -> int:
        self._require_write()
        if method == "DELETE":
            if name not in repo.branches:
                raise HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")
            if name == "main":
                raise HubError(403, "cannot delete the main branch")
            del repo.branches[name]
            return self._send(200, {})
        if name in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{name}")
        start = repo.resolve(self._json().get("startingPoint") or "main")
        repo.branches[name] = start.sha
        return self._send(200, {})

    def _tag(self, method: str, repo: Repo, name: str) -> int:
        self._require_write()
        if method == "DELETE":  # DELETE /tag/{tag}
            if repo.tags.pop(name, None) is None:
                raise HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")
            return self._send(200, {})
        tag = self._json().get("tag", "")  # POST /tag/{revision} {"tag": ...}
        if not tag:
            raise HubError(400, "missing tag name")
        if tag in repo.tags:
            raise HubError(409, f"Tag already exists: {tag}")
        repo.tags[tag] = repo.resolve(name).sha
        return self._send(200, {})
