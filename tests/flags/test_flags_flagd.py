"""The flagd backend: schema-valid files, other flags untouched, and the real OpenFeature flagd provider's view."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitoring.flags import FlagMoved, FlagUnavailable
from monitoring.flags.clients import flagd_file_reader, share_on, wait_for_share
from monitoring.flags.flagd import FlagdFile, definition
from tests.conftest import reference_root
from tests.support.flagd_schema import _validators, schema_error

FLAG = "phase_4_deployment"
STEPS = (0, 5, 10, 25, 50, 75, 100)
OTHERS = {
    "$evaluators": {"beta-users": {"in": [{"var": "email"}, ["a@example.com"]]}},
    "flags": {
        "checkout-theme": {"state": "ENABLED", "variants": {"red": "#f00", "blue": "#00f"}, "defaultVariant": "red",
                           "targeting": {"if": [{"$ref": "beta-users"}, "blue", None]}},
        "retired": {"state": "DISABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"},
    },
}


@pytest.fixture(autouse=True)
def flagd_schema() -> None:
    if not (reference_root() / "flagd" / "flags.json").is_file():
        pytest.skip(f"flagd's schema not found in {reference_root()} (set MONITORING_REF)")


@pytest.fixture
def flags_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(OTHERS, indent=2))
    return path


@pytest.mark.parametrize("percentage", STEPS)
def test_each_step_writes_a_file_valid_against_flagd_schema(flags_file: Path, percentage: int) -> None:
    backend = FlagdFile(flags_file, FLAG)
    backend.set(percentage)
    document = json.loads(flags_file.read_text())
    assert schema_error(document) is None
    assert document["flags"][FLAG] == definition(percentage)
    assert backend.read() == percentage


def test_the_rollout_is_a_fractional_split_and_zero_has_no_targeting() -> None:
    assert definition(25)["targeting"] == {"fractional": [["on", 25], ["off", 75]]}
    assert definition(0) == {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}


@pytest.mark.parametrize("broken", [
    {"flags": {FLAG: {"variants": {"on": True, "off": False}, "defaultVariant": "off"}}},  # no state
    {"flags": {FLAG: {"state": "PAUSED", "variants": {"on": True}, "defaultVariant": "on"}}},
    {"flags": {FLAG: {"state": "ENABLED", "variants": {"on": True, "off": "no"}, "defaultVariant": "on"}}},
    {"flags": {FLAG: {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off",
                      "targeting": {"fractional": "half"}}}},  # an error only targeting.json knows
])
def test_the_schema_check_rejects_broken_files(broken: dict) -> None:
    assert schema_error(broken)


@pytest.mark.parametrize("document", [
    OTHERS,
    {"flags": {FLAG: definition(10)}},
    {"flags": {FLAG: {"state": "PAUSED", "variants": {"on": True}}}},
    {"flags": {FLAG: {**definition(10), "targeting": {"fractional": "half"}}}},
    {**OTHERS, "$evaluators": {"broken": {"no-such-operator": 1}}},
    {"flags": {"": definition(0)}},
    {"flags": []},
    {"flag": {}},
])
def test_checking_frame_and_flags_apart_agrees_with_the_whole_schema(document: dict) -> None:
    """schema_error checks each flag on its own (for speed); flagd's schema on the whole file must agree."""
    whole = _validators(reference_root() / "flagd")[0]
    assert (schema_error(document) is None) == whole.is_valid(document)


def test_a_file_breaking_the_schema_is_refused_by_name(flags_file: Path) -> None:
    flags_file.write_text(json.dumps({"flags": {FLAG: {"state": "PAUSED", "variants": {"on": True}}}}))
    with pytest.raises(FlagUnavailable, match=rf"flagd file {flags_file}, flag {FLAG}: not a valid flagd file"):
        FlagdFile(flags_file, FLAG).set(10)
    flags_file.write_text("{ not json")
    with pytest.raises(FlagUnavailable, match=rf"{flags_file}.*not JSON"):
        FlagdFile(flags_file, FLAG).read()


def test_other_flags_and_evaluators_are_left_as_they_were(flags_file: Path) -> None:
    backend = FlagdFile(flags_file, FLAG)
    for percentage in (10, 50, 0):
        backend.set(percentage)
        document = json.loads(flags_file.read_text())
        assert document["$evaluators"] == OTHERS["$evaluators"]
        assert {k: v for k, v in document["flags"].items() if k != FLAG} == OTHERS["flags"]


def test_a_missing_file_is_an_error_and_a_missing_flag_reads_as_zero(tmp_path: Path) -> None:
    """A mistyped path is not a rollout at 0 %: reading it, or a conditional set, names the missing file."""
    path = tmp_path / "new.json"
    backend = FlagdFile(path, FLAG)
    with pytest.raises(FlagUnavailable, match=rf"^flagd file {path}, flag {FLAG}: no such file \(`monitoring rollout "
                                              r"--create` creates it"):
        backend.read()
    with pytest.raises(FlagUnavailable, match="no such file"):
        backend.set(10, expected=0)
    assert not path.exists()
    assert backend.create() and backend.read() == 0 and not backend.create()
    assert schema_error(json.loads(path.read_text())) is None
    other = FlagdFile(path, "another-flag")
    assert other.read() == 0, "a flag missing from an existing file reads as 0 %"
    assert other.set(10, expected=0) == 0 and other.read() == 10 and backend.read() == 0


def test_an_unconditional_set_creates_the_file_in_a_folder_that_exists(tmp_path: Path) -> None:
    """As the local stack does at start (`set(0)`)."""
    backend = FlagdFile(tmp_path / "new.json", FLAG)
    assert backend.set(0) == 0 and backend.read() == 0


def test_setting_the_current_target_writes_nothing(flags_file: Path) -> None:
    backend = FlagdFile(flags_file, FLAG)
    backend.set(25)
    inode = flags_file.stat().st_ino
    assert backend.set(25) == 25
    assert flags_file.stat().st_ino == inode


def test_a_conditional_set_does_not_overwrite_a_moved_flag(flags_file: Path) -> None:
    backend = FlagdFile(flags_file, FLAG)
    backend.set(25)
    before = flags_file.read_text()
    with pytest.raises(FlagMoved, match="rollout is 25 %, not the expected 10 %"):
        backend.set(50, expected=10)
    assert flags_file.read_text() == before
    assert backend.set(0, expected=25) == 25
    assert backend.read() == 0


def test_a_flag_this_backend_cannot_read_is_refused(flags_file: Path) -> None:
    document = {"flags": {FLAG: {**definition(10), "targeting": {"if": [True, "on", "off"]}}}}
    flags_file.write_text(json.dumps(document))
    with pytest.raises(FlagUnavailable, match="not a fractional split of on and off"):
        FlagdFile(flags_file, FLAG).read()


@pytest.mark.parametrize("percentage", [5, 25, 50, 90])
def test_the_flagd_provider_sees_about_the_rollout_share_of_1000_keys(flags_file: Path, percentage: int) -> None:
    FlagdFile(flags_file, FLAG).set(percentage)
    with flagd_file_reader(flags_file, FLAG) as evaluate:
        assert share_on(evaluate) == pytest.approx(percentage, abs=3)


def test_the_flagd_provider_sees_zero_at_zero_even_with_a_code_default_of_true(flags_file: Path) -> None:
    FlagdFile(flags_file, FLAG).set(0)
    with flagd_file_reader(flags_file, FLAG) as evaluate:  # the reader's code default is True
        assert share_on(evaluate) == 0


def test_the_flagd_provider_sees_a_rollback_through_its_file_watch(flags_file: Path) -> None:
    """Measured in `python -m monitoring.bench.flags`; here only that it happens, polled with a deadline."""
    backend = FlagdFile(flags_file, FLAG)
    backend.set(50)
    with flagd_file_reader(flags_file, FLAG) as evaluate:
        assert share_on(evaluate) == pytest.approx(50, abs=3)
        assert backend.set(0, expected=50) == 50
        _, share = wait_for_share(evaluate, lambda share: share == 0, timeout=15)
        assert share == 0


def test_a_file_in_a_missing_folder_is_one_error_naming_it_and_no_folder_is_made(tmp_path: Path) -> None:
    backend = FlagdFile(tmp_path / "no-such-folder" / "flags.json", FLAG)
    said = rf"^flagd file {tmp_path}/no-such-folder/flags.json, flag {FLAG}: no such file: {tmp_path}/no-such-folder " \
           r"does not exist \(no folder is made\)"
    for act in (backend.read, lambda: backend.set(0), lambda: backend.set(10, expected=0), backend.create):
        with pytest.raises(FlagUnavailable, match=said):
            act()
    assert not (tmp_path / "no-such-folder").exists()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(FlagUnavailable, match=rf"{tmp_path}/a-file is not a folder"):
        FlagdFile(tmp_path / "a-file" / "flags.json", FLAG).create()
    with pytest.raises(FlagUnavailable, match=rf"^flagd file {tmp_path}, flag {FLAG}: is a folder, not a flagd file"):
        FlagdFile(tmp_path, FLAG).read()


@pytest.mark.parametrize(("document", "reason"), [
    ([], r"\$: not a JSON object"),
    ({"flag": {}}, r"\$\.flags: missing"),
    ({"flags": {"": {}}}, r"\$\.flags: a flag key is empty"),
    ({"flags": {FLAG: "on"}}, rf"\$\.flags\.{FLAG}: not an object"),
    ({"flags": {FLAG: {**definition(10), "state": "PAUSED"}}}, rf"\$\.flags\.{FLAG}: state 'PAUSED'"),
    ({"flags": {FLAG: {**definition(10), "defaultVariant": "maybe"}}}, rf"\$\.flags\.{FLAG}: defaultVariant 'maybe'"),
])
def test_the_backend_checks_the_parts_it_touches_without_flagd_schema(tmp_path: Path, document, reason: str) -> None:
    """The product reads no reference data: it names what is wrong with the file's frame and its own flag."""
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(document))
    with pytest.raises(FlagUnavailable, match=rf"flagd file {path}, flag {FLAG}: not a valid flagd file: {reason}"):
        FlagdFile(path, FLAG).read()
    assert json.loads(path.read_text()) == document, "nothing is written"


def _command(capsys, *argv: str) -> tuple[int, str, str]:
    from monitoring.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_commands_refuse_a_missing_flag_file_and_create_nothing(tmp_path: Path, capsys,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`status --flags flagd:<missing file>` used to read 0 % and exit 0."""
    monkeypatch.delenv("MONITORING_FLAGS", raising=False)
    state, missing = tmp_path / "state.json", tmp_path / "typo.json"
    for argv in (["status"], ["rollout", "--percentage", "10"], ["rollout", "--percentage", "0"],
                 ["rollback", "--reason", "x"]):
        code, _, err = _command(capsys, *argv, "--state", str(state), "--flags", f"flagd:{missing}")
        assert code == 4 and err == (f"monitoring {argv[0]}: flagd file {missing}, flag {FLAG}: no such file "
                                     "(`monitoring rollout --create` creates it, the flag at 0 %)\n")
    folder = tmp_path / "missing-folder" / "flags.json"
    code, _, err = _command(capsys, "rollout", "--percentage", "10", "--create", "--state", str(state),
                            "--flags", f"flagd:{folder}")
    assert code == 4 and f"{tmp_path}/missing-folder does not exist (no folder is made)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing is created: no state, no folder, no lock"


def test_rollout_create_makes_the_flagd_file_and_records_the_move(tmp_path: Path, capsys,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONITORING_FLAGS", raising=False)
    state, flags = tmp_path / "state.json", tmp_path / "flags.json"
    code, out, _ = _command(capsys, "rollout", "--percentage", "10", "--create", "--state", str(state),
                            "--flags", f"flagd:{flags}")
    assert code == 0 and out == (f"created {flags} with {FLAG} at 0%\ncreated the state file {state} at 0%\n"
                                 "rollout: 0% -> 10%\n")
    assert FlagdFile(flags, FLAG).read() == 10 and schema_error(json.loads(flags.read_text())) is None
    code, out, _ = _command(capsys, "status", "--state", str(state), "--flags", f"flagd:{flags}")
    assert code == 0 and json.loads(out)["flag_system"]["rollout_percentage"] == 10


def test_rollout_at_zero_on_a_missing_state_creates_it_and_says_so(tmp_path: Path, capsys,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """It used to say "already at 0%" and create nothing."""
    monkeypatch.delenv("MONITORING_FLAGS", raising=False)
    state = tmp_path / "state.json"
    code, out, _ = _command(capsys, "rollout", "--percentage", "0", "--state", str(state))
    assert code == 0 and out == f"created the state file {state} at 0%\nrollout already at 0%\n"
    assert json.loads(state.read_text())["current_percentage"] == 0
    code, out, _ = _command(capsys, "rollout", "--percentage", "0", "--state", str(state))
    assert code == 0 and out == "rollout already at 0%\n"
    code, _, err = _command(capsys, "rollout", "--percentage", "5", "--state", str(tmp_path / "no" / "state.json"))
    assert code == 2 and err == (f"monitoring rollout: --state {tmp_path}/no/state.json: no such state file, and its "
                                 f"folder {tmp_path}/no does not exist (no folder is made)\n")
    assert not (tmp_path / "no").exists()
