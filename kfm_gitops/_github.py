"""The only module that speaks GitHub's REST API: pull requests, their reviews, and the pull request a merge commit
came from. Steward approvals from reviews answer through the approvals interface.

Configured from the environment a workflow gives: GITHUB_API_URL (default https://api.github.com),
GITHUB_REPOSITORY (owner/name) and GITHUB_TOKEN. Every failure (a refused token, an exhausted rate limit, a server
error, an unreachable host) is an error that names its cause: approvals that cannot be read are not approvals.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kfm_gitops.approvals import Approval
from kfm_gitops.errors import KfmError

if TYPE_CHECKING:
    from kfm_gitops.config import Config
    from kfm_gitops.release import Pointer

DEFAULT_API = "https://api.github.com"
PAGE_SIZE = 100
MAX_PAGES = 50  # 5,000 reviews on one pull request is beyond any real review; more is refused, not truncated
_NEXT_RE = re.compile(r'<([^>]+)>;\s*rel="next"')


class GitHubError(KfmError):
    code = "GITHUB_API"


@dataclass(frozen=True, slots=True)
class GitHub:
    api: str
    repository: str
    token: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GitHub:
        env = os.environ if env is None else env
        repository = env.get("GITHUB_REPOSITORY", "")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
            raise GitHubError("GITHUB_REPOSITORY is not set to owner/name",
                              hint="run this in a GitHub workflow, or set GITHUB_REPOSITORY and GITHUB_TOKEN")
        return cls(env.get("GITHUB_API_URL") or DEFAULT_API, repository, env.get("GITHUB_TOKEN") or None)

    def _request(self, url: str) -> tuple[Any, str | None]:
        import urllib.error
        import urllib.request

        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
                   "User-Agent": "kfm-gitops"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=self.timeout) as resp:
                body = resp.read()
                link = resp.headers.get("Link") or ""
        except urllib.error.HTTPError as exc:
            raise self._refused(url, exc.code, exc.headers, exc.read()) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise GitHubError(f"GitHub's API at {self.api} cannot be reached: {exc}",
                              hint="check GITHUB_API_URL and the network; approvals cannot be confirmed") from exc
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise GitHubError(f"GitHub answered {url} with something that is not JSON") from exc
        found = _NEXT_RE.search(link)
        return doc, found.group(1) if found else None

    def _refused(self, url: str, status: int, headers: Any, body: bytes) -> GitHubError:
        try:
            said = str(json.loads(body).get("message", ""))
        except (ValueError, AttributeError):
            said = ""
        said = f" ({said})" if said else ""
        if status == 401:
            return GitHubError(f"GitHub refused the token for {url}: 401{said}",
                               hint="GITHUB_TOKEN is missing, expired or revoked")
        if status in (403, 429) and (headers.get("X-RateLimit-Remaining") == "0" or headers.get("Retry-After")):
            reset = headers.get("X-RateLimit-Reset") or ""
            when = f" until {reset} (epoch seconds)" if reset else ""
            return GitHubError(f"GitHub's rate limit is exhausted{when}: {status}{said}",
                               hint="run the check again later; nothing was approved meanwhile")
        if status == 403:
            return GitHubError(f"GitHub forbids {url}: 403{said}",
                               hint="the token needs pull-requests: read on this repository")
        if status == 404:
            return GitHubError(f"GitHub has no {url}: 404{said}", hint="check GITHUB_REPOSITORY and the number")
        return GitHubError(f"GitHub failed on {url}: {status}{said}", hint="run the check again later")

    def get(self, path: str) -> Any:
        doc, _ = self._request(f"{self.api.rstrip('/')}/repos/{self.repository}/{path}")
        return doc

    def get_all(self, path: str) -> list[Any]:
        """Every page of a list endpoint (Link: rel="next")."""
        url: str | None = f"{self.api.rstrip('/')}/repos/{self.repository}/{path}?per_page={PAGE_SIZE}"
        out: list[Any] = []
        for _ in range(MAX_PAGES):
            if url is None:
                return out
            page, url = self._request(url)
            if not isinstance(page, list):
                raise GitHubError(f"GitHub answered {path} with {type(page).__name__}, not a list")
            out.extend(page)
        raise GitHubError(f"{path} has more than {MAX_PAGES} pages of results", hint="this is not a review")

    def pull(self, number: int) -> dict[str, Any]:
        doc = self.get(f"pulls/{number}")
        if not isinstance(doc, dict):
            raise GitHubError(f"GitHub answered pull {number} with something that is not a pull request")
        return doc

    def reviews(self, number: int) -> list[dict[str, Any]]:
        return [r for r in self.get_all(f"pulls/{number}/reviews") if isinstance(r, dict)]

    def pull_of_merge(self, sha: str) -> int | None:
        """The pull request whose merge made commit ``sha`` (None when it was pushed directly)."""
        for pr in self.get_all(f"commits/{sha}/pulls"):
            if isinstance(pr, dict) and pr.get("merge_commit_sha") == sha and isinstance(pr.get("number"), int):
                return int(pr["number"])
        return None


def _login(doc: Any) -> str:
    user = doc.get("user") if isinstance(doc, dict) else None
    return str(user.get("login", "")) if isinstance(user, dict) else ""


def latest_states(reviews: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Each reviewer's latest review that decides (approved, changes requested, dismissed); comments decide
    nothing. GitHub lists reviews oldest first."""
    latest: dict[str, Mapping[str, Any]] = {}
    for review in reviews:
        if str(review.get("state", "")).upper() in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[_login(review)] = review
    return latest


@dataclass(frozen=True, slots=True)
class ReviewApprovals:
    """Approvals from a pull request's reviews: a reviewer's latest deciding review, APPROVED, on the pull
    request's current head commit, by someone other than its author; one approval per role kfm.yaml gives them."""

    client: GitHub
    number: int
    roles: Mapping[str, Sequence[str]]

    def approvals(self) -> list[Approval]:
        pr = self.client.pull(self.number)
        head = str(pr.get("head", {}).get("sha", "")) if isinstance(pr.get("head"), dict) else ""
        if not head:
            raise GitHubError(f"pull request {self.number} has no head commit in GitHub's answer")
        author = _login(pr)
        out: list[Approval] = []
        for login, review in sorted(latest_states(self.client.reviews(self.number)).items()):
            if str(review.get("state", "")).upper() != "APPROVED" or review.get("commit_id") != head:
                continue
            if not login or login == author:
                continue
            where = f"review {review.get('html_url') or review.get('id')}"
            out.extend(Approval(role, login, where) for role, people in sorted(self.roles.items())
                       if login in people)
        return out


def github_approvals(config: Config, pointer: Pointer) -> list[Approval]:
    """At promotion on GitHub: the approving reviews of the plan PR that brought the version's evidence into main
    and of the release PR that brought its pointer into release (each found from its merge commit)."""
    from kfm_gitops import _git
    from kfm_gitops.versions import published_file, repo_path

    client = GitHub.from_env()
    repo = _git.discover(config.root)
    if repo is None:
        raise GitHubError(f"{config.root} is not a git repository")
    release_head = _git.branch_head(repo, config.release_branch)
    merges = [pointer.evidence_commit]
    if release_head is not None:
        last = _git.last_change(repo, release_head, repo_path(config, published_file(config, pointer.slug)))
        merges += [str(last)] if last is not None else []
    roles = {role: list(people) for role, people in config.roles.items()}
    out: list[Approval] = []
    for sha in merges:
        number = client.pull_of_merge(sha)
        if number is not None:
            out += ReviewApprovals(client, number, roles).approvals()
    return out
