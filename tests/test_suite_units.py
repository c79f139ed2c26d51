"""How `make test` hands the suite to its workers (tests/conftest.py): the files that share the session's Unleash
go to one worker together, every other file alone; the long files are named as they are."""

from __future__ import annotations

import re

from tests.conftest import LONGEST_FIRST, PROJECT, SHARING_UNLEASH, work_unit

USES_UNLEASH = re.compile(r'[(,]\s*unleash_server\s*[:,)]|getfixturevalue\("unleash_server"\)')


def test_the_files_sharing_unleash_are_exactly_those_that_ask_for_the_session_s_server() -> None:
    asking = sorted(str(path.relative_to(PROJECT / "tests")) for path in (PROJECT / "tests").rglob("test_*.py")
                    if USES_UNLEASH.search(path.read_text()))
    assert asking and sorted(SHARING_UNLEASH) == asking


def test_the_files_sharing_unleash_are_one_unit_and_every_other_file_its_own() -> None:
    units = {work_unit(f"tests/{name}::test_x") for name in SHARING_UNLEASH}
    assert units == {f"tests/{SHARING_UNLEASH[0]}"}
    assert work_unit("tests/flags/test_stack_flags.py::test_y[unleash]") == "tests/flags/test_stack_flags.py"
    assert work_unit("tests/receiver/test_receiver.py::test_z") == "tests/receiver/test_receiver.py"


def test_the_long_files_exist() -> None:
    assert [name for name in LONGEST_FIRST if not (PROJECT / "tests" / name).is_file()] == []
