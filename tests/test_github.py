"""Steward approvals from GitHub reviews, read from a loopback server that answers with GitHub's payload shapes
(the webhook examples in ../shared/standards/github-webhooks/; the REST review list has upper-case states)."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from conftest import STANDARDS
from kfm_gitops._github import GitHub, GitHubError, ReviewApprovals
from kfm_gitops.approvals import Approval

HOOKS = STANDARDS / "github-webhooks"
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
ROLES = {"steward": ["steward-kim", "steward-ode", "Codertocat"], "release_manager": ["rm-lee"]}


def payload(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((HOOKS / f"{name}.payload.json").read_text(encoding="utf-8"))
    return doc


def review(login: str, state: str, commit: str = HEAD, n: int = 1) -> dict[str, Any]:
    r: dict[str, Any] = copy.deepcopy(payload("pull_request_review.submitted")["review"])
    r.update(id=1000 + n, state=state, commit_id=commit,
             html_url=f"https://github.com/Codertocat/Hello-World/pull/2#pullrequestreview-{1000 + n}")
    r["user"] = {**r["user"], "login": login}
    return r


class Fake:
    """Routes of GitHub's REST API over canned answers; records what was asked."""

    def __init__(self) -> None:
        pr = payload("pull_request.opened")["pull_request"]
        pr["head"]["sha"] = HEAD
        self.routes: dict[str, tuple[int, Any, dict[str, str]]] = {
            "/repos/Codertocat/Hello-World/pulls/2": (200, pr, {})}
        self.asked: list[tuple[str, str | None]] = []

    def reviews(self, pages: list[list[dict[str, Any]]]) -> None:
        base = "/repos/Codertocat/Hello-World/pulls/2/reviews"
        for i, page in enumerate(pages):
            more = {"Link": f'<{{api}}{base}?per_page=100&page={i + 2}>; rel="next"'} if i + 1 < len(pages) else {}
            self.routes[f"{base}?per_page=100" + (f"&page={i + 1}" if i else "")] = (200, page, more)


@pytest.fixture
def github() -> Iterator[tuple[Fake, GitHub]]:
    fake = Fake()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.asked.append((self.path, self.headers.get("Authorization")))
            status, body, headers = fake.routes.get(self.path, (404, {"message": "Not Found"}, {}))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for k, v in headers.items():
                self.send_header(k, v.replace("{api}", api))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, GitHub(api, "Codertocat/Hello-World", token="t0ken", timeout=5)
    finally:
        server.shutdown()
        server.server_close()


def test_only_latest_approvals_on_the_head_by_stewards_other_than_the_author_count(
        github: tuple[Fake, GitHub]) -> None:
    fake, client = github
    fake.reviews([[
        review("steward-kim", "APPROVED", n=1),
        review("steward-ode", "APPROVED", n=2),
        review("steward-ode", "CHANGES_REQUESTED", n=3),  # the latest deciding review wins
        review("rm-lee", "APPROVED", commit="0" * 40, n=4),  # stale: an earlier head
        review("Codertocat", "APPROVED", n=5),  # the pull request's author
        review("visitor", "APPROVED", n=6),  # holds no role
    ], [
        review("steward-kim", "COMMENTED", n=7),  # a comment decides nothing
        review("dismissed-dan", "APPROVED", n=8),
        review("dismissed-dan", "DISMISSED", n=9),
    ]])
    got = ReviewApprovals(client, 2, {**ROLES, "steward": [*ROLES["steward"], "visitor2", "dismissed-dan"]}
                          ).approvals()
    assert got == [Approval("steward", "steward-kim",
                            "review https://github.com/Codertocat/Hello-World/pull/2#pullrequestreview-1001")]
    assert [p for p, _ in fake.asked] == [
        "/repos/Codertocat/Hello-World/pulls/2", "/repos/Codertocat/Hello-World/pulls/2/reviews?per_page=100",
        "/repos/Codertocat/Hello-World/pulls/2/reviews?per_page=100&page=2"]
    assert {auth for _, auth in fake.asked} == {"Bearer t0ken"}


def test_the_pull_request_of_a_merge_commit(github: tuple[Fake, GitHub]) -> None:
    fake, client = github
    closed = payload("pull_request.closed")["pull_request"]
    sha = str(closed["merge_commit_sha"])
    fake.routes[f"/repos/Codertocat/Hello-World/commits/{sha}/pulls?per_page=100"] = (200, [closed], {})
    assert client.pull_of_merge(sha) == closed["number"]
    fake.routes[f"/repos/Codertocat/Hello-World/commits/{'1' * 40}/pulls?per_page=100"] = (200, [], {})
    assert client.pull_of_merge("1" * 40) is None


@pytest.mark.parametrize("status, headers, words", [
    (401, {}, "GitHub refused the token"),
    (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1700000000"}, "rate limit is exhausted until 17"),
    (403, {}, "GitHub forbids"),
    (500, {}, "GitHub failed on"),
])
def test_errors_fail_closed_with_their_cause(github: tuple[Fake, GitHub], status: int, headers: dict[str, str],
                                            words: str) -> None:
    fake, client = github
    fake.routes["/repos/Codertocat/Hello-World/pulls/2"] = (status, {"message": "nope"}, headers)
    with pytest.raises(GitHubError, match=words) as caught:
        ReviewApprovals(client, 2, ROLES).approvals()
    assert caught.value.exit_code == 1


def test_an_unreachable_api_and_a_missing_repository_are_errors() -> None:
    client = GitHub("http://127.0.0.1:9", "o/r", timeout=2)
    with pytest.raises(GitHubError, match="cannot be reached"):
        client.pull(1)
    with pytest.raises(GitHubError, match="GITHUB_REPOSITORY is not set"):
        GitHub.from_env({})
    assert GitHub.from_env({"GITHUB_REPOSITORY": "o/r", "GITHUB_TOKEN": "x"}) == GitHub(
        "https://api.github.com", "o/r", "x")
