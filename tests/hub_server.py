"""A real HTTP server on 127.0.0.1 that stands in for the Hugging Face Hub's file endpoint (huggingface_hub 2.4.0).

hf_hub_download(repo_id, filename, revision=...) sends HEAD {endpoint}/{repo_id}/resolve/{revision}/{filename},
then GET on the same URL only when the file is not cached yet. Each is answered as the Hub answers a small
(non-LFS) file: 200, Content-Length, ETag (the quoted sha256 of the content) and X-Repo-Commit (a fake 40-hex
commit, stable for the same repo, revision and files; the commit is accepted as a revision too). No redirect and
no X-Xet-* header, so hf_xet is never used. A miss is a 404 whose X-Error-Code (RepoNotFound, RevisionNotFound,
EntryNotFound) hf_hub_download raises as RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError
(a subclass of EntryNotFoundError). Any other path, e.g. the GET /api/agent-harnesses sent unless
HF_HUB_DISABLE_TELEMETRY=1, is a plain 404.

huggingface_hub reads HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE and HF_HUB_DISABLE_TELEMETRY once, when it is
imported. A subprocess gets them in its env (HF_ENDPOINT=url, HF_HOME=tmp, HF_HUB_DISABLE_TELEMETRY=1,
HF_HUB_DISABLE_PROGRESS_BARS=1). In-process, setting them afterwards does nothing: pass endpoint=url and
cache_dir=tmp to hf_hub_download, or monkeypatch huggingface_hub.constants.ENDPOINT and HUGGINGFACE_CO_URL_TEMPLATE
(both), HF_HUB_CACHE, HF_HUB_OFFLINE and HF_HUB_DISABLE_TELEMETRY.
"""

import contextlib
import hashlib
import http.server
import json
import urllib.parse

from http_server import running


def commit_sha(repo_id, revision, files):
    """The fake commit of one revision: it changes when the files do, as a real new commit would."""
    digest = hashlib.sha1(f"{repo_id}\0{revision}".encode())
    for name in sorted(files):
        digest.update(f"\0{name}\0".encode() + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for key, value in [("Content-Length", str(len(body))), *headers]:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def miss(self, code, commit=None):
        headers = [("Content-Type", "application/json"), ("X-Error-Code", code), ("X-Error-Message", code)]
        if commit is not None:  # the Hub names the commit on EntryNotFound; the client caches the miss under it
            headers.append(("X-Repo-Commit", commit))
        self.reply(404, json.dumps({"error": code}).encode(), headers)

    def do_HEAD(self):  # noqa: N802 (the http.server API)
        self.server.requests.append((self.command, self.path))
        parts = [urllib.parse.unquote(part) for part in urllib.parse.urlsplit(self.path).path.split("/")[1:]]
        if len(parts) < 5 or parts[2] != "resolve":
            return self.reply(404, b"Not Found")
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        revisions = self.server.repos.get(repo_id)
        if revisions is None:
            return self.miss("RepoNotFound")
        commits = {commit_sha(repo_id, name, files): name for name, files in revisions.items()}
        files = revisions.get(commits.get(revision, revision))
        if files is None:
            return self.miss("RevisionNotFound")
        commit = commit_sha(repo_id, commits.get(revision, revision), files)
        if filename not in files:
            return self.miss("EntryNotFound", commit)
        body = files[filename]
        etag = hashlib.sha256(body).hexdigest()
        headers = [("Content-Type", "application/octet-stream"), ("ETag", f'"{etag}"'), ("X-Repo-Commit", commit)]
        self.reply(200, body, headers)

    do_GET = do_HEAD  # noqa: N815 (the same answer; reply() leaves the body out of a HEAD)


@contextlib.contextmanager
def serve_hub(repos):
    """Serve {"owner/name": {revision: {filename: bytes}}}; yield (endpoint_url, server).

    server.requests lists the (method, path) of every request received; the server stops when the block ends.
    """
    with running(Handler, repos=repos, requests=[]) as (url, server):
        yield url, server
