"""The local copy of the revoked client key secrets (``<data_dir>/revoked_keys.json``): what it reads back, what it
makes of a copy it did not write (a warning, and no revocations rather than a crash), how it is written."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gateway.keys import hash_key
from gateway.revocation_copy import FILE_NAME, RevocationCopy, decode, encode
from routing.store import Revocation

APP = Revocation(hash_key("sk-test-client-0001"), "app", 2, 1_700_000_000.5)
SUMMARIZER = Revocation(hash_key("sk-test-summarizer-0001"), "summarizer", 3, 1_700_000_100.0)
REVOKED = {r.key_sha256: r for r in (APP, SUMMARIZER)}


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_a_copy_reads_back_the_revocations_it_was_written_with(tmp_path: Path) -> None:
    await RevocationCopy(str(tmp_path)).keep(REVOKED)
    assert RevocationCopy(str(tmp_path)).load() == REVOKED


def entry(**row: object) -> dict[str, object]:
    return {"format": 1, "revoked": {APP.key_sha256: row}}


@pytest.mark.parametrize(
    "text",
    [
        '{"format": 1, "revoked": {"not a dig',  # cut short
        "",
        json.dumps(["format", 1]),
        json.dumps({"format": 2, "revoked": {}}),
        json.dumps({"format": 1, "revoked": {"sk-test-client-0001": {"name": "app", "version": 2}}}),
        json.dumps(entry(name="app", version="2", revoked_at=1.0)),
        json.dumps({"format": 1, "revoked": {APP.key_sha256: ["app", 2]}}),
    ],
    ids=["cut-short", "empty", "not-an-object", "other-format", "not-a-digest", "version-text", "entry-list"],
)
def test_a_copy_it_did_not_write_is_named_in_a_warning_and_holds_no_revocations(
    text: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / FILE_NAME).write_text(text)
    copy = RevocationCopy(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="pointsman.policy"):
        assert copy.load() is None
    [line] = warnings(caplog)
    assert f"cannot read the local copy of the revoked client key secrets {copy.path}" in line


def test_a_missing_copy_holds_no_revocations_and_says_the_file_keys_are_loaded_as_they_are(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pointsman.policy"):
        assert RevocationCopy(str(tmp_path / "data")).load() is None
    [line] = warnings(caplog)
    assert "no local copy" in line and "loaded as they are" in line


def test_a_copy_holds_digests_names_and_versions_only() -> None:
    text = encode({APP.key_sha256: APP}).decode()
    assert "sk-test-client-0001" not in text
    assert decode(text.encode()) == {APP.key_sha256: APP}


async def test_writing_a_copy_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    copy = RevocationCopy(str(tmp_path))
    await copy.keep({APP.key_sha256: APP})
    await copy.keep(REVOKED)
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]


async def test_a_copy_is_not_written_again_for_the_revocations_it_already_holds(tmp_path: Path) -> None:
    copy = RevocationCopy(str(tmp_path))
    await copy.keep(REVOKED)
    (tmp_path / FILE_NAME).unlink()
    await copy.keep(dict(REVOKED))
    assert not (tmp_path / FILE_NAME).exists()


async def test_a_copy_that_cannot_be_written_is_named_in_a_warning_and_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "data").write_text("a file where the data_dir should be")
    copy = RevocationCopy(str(tmp_path / "data"))
    with caplog.at_level(logging.WARNING, logger="pointsman.policy"):
        await copy.keep(REVOKED)
    [line] = warnings(caplog)
    assert f"cannot write the local copy of the revoked client key secrets {copy.path}" in line


async def test_a_copy_that_could_not_be_written_is_written_at_the_next_chance(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_text("in the way")
    copy = RevocationCopy(str(data))
    await copy.keep(REVOKED)
    data.unlink()
    await copy.keep(REVOKED)
    assert RevocationCopy(str(data)).load() == REVOKED


def test_a_copy_that_cannot_be_opened_is_named_in_a_warning_and_holds_no_revocations(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / FILE_NAME).mkdir()
    copy = RevocationCopy(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="pointsman.policy"):
        assert copy.load() is None
    [line] = warnings(caplog)
    assert f"cannot read the local copy of the revoked client key secrets {copy.path}" in line


async def test_a_write_that_fails_at_the_rename_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).mkdir()  # the rename over it fails
    (tmp_path / FILE_NAME / "in-the-way").touch()
    await RevocationCopy(str(tmp_path)).keep(REVOKED)
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]
