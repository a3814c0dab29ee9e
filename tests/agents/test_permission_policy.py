"""The answer the supervisor gives OpenCode's permission requests, as nobody else will."""

from __future__ import annotations

import pytest

from outrider.agents.opencode import permission_reply

REPO = "/sandbox/repo"


def asked(permission: str, *patterns: str) -> dict[str, object]:
    """A permission.asked event's properties, shaped as OpenCode 1.18.33 sends them."""
    return {
        "id": "per_240759b39001h3luNCJUV1LsWa",
        "sessionID": "ses_dbf8a6b40ffeUdHx4hNu3Fziv0",
        "permission": permission,
        "patterns": list(patterns),
        "always": list(patterns),
        "metadata": {},
        "tool": {"messageID": "msg_24075975a001jt0fkf0Irr8yOT", "callID": "call_0"},
    }


@pytest.mark.parametrize(
    ("properties", "reply"),
    [
        # Captured from OpenCode writing outside its directory.
        (asked("external_directory", "/srv/sandbox/outside/*"), "reject"),
        (asked("external_directory", f"{REPO}/sub/*"), "reject"),
        (asked("edit", f"{REPO}/src/app.py"), "once"),
        (asked("edit", REPO), "once"),
        (asked("bash", "git status"), "once"),
        (asked("edit", "/sandbox/home/.bashrc"), "reject"),
        (asked("edit", f"{REPO}/../home/.bashrc"), "reject"),
        (asked("edit", "/sandbox/repository-twin/x"), "reject"),
        (asked("edit", f"{REPO}/ok.txt", "/etc/passwd"), "reject"),
    ],
)
def test_work_inside_the_repo_is_allowed_and_the_rest_refused(
    properties: dict[str, object], reply: str
) -> None:
    assert permission_reply(properties, REPO) == reply
