import os
import shutil

import pytest

from settings import PathNotAllowed, Settings, confine


def test_settings_from_env(tmp_path):
    s = Settings.from_env({"DATA_DIR": str(tmp_path), "ZHIPUAI_API_KEY": "sk-secret", "LOW_CONFIDENCE": "0.3"})
    assert s.data_dir == tmp_path and s.data_roots == (tmp_path / "datasets",) and s.low_confidence == 0.3
    assert "sk-secret" not in repr(s) and s.llm_data_prefix
    assert not Settings.from_env({"GLM_DATA_PREFIX": "0"}).llm_data_prefix
    two = Settings.from_env({"DATA_ROOTS": os.pathsep.join(["/a", "/b"])})
    assert [str(r) for r in two.data_roots] == ["/a", "/b"]


def test_confine_refuses_dotdot_and_symlink_escape(tmp_path):
    root = tmp_path / "root"
    (root / "set").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", root / "link")
    assert confine(root / "set", [root]) == (root / "set").resolve()
    assert confine("set", [root]) == (root / "set").resolve()
    for bad in (root / ".." / "secret", "../secret", root / "link", "/etc"):
        with pytest.raises(PathNotAllowed, match="not a data set of this app"):
            confine(bad, [root])


def test_persistence_is_judged_on_spaces_only(tmp_path, monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert Settings.from_env({"DATA_DIR": str(tmp_path)}).persistent
    monkeypatch.setenv("SPACE_ID", "someone/animals")
    assert not Settings.from_env({"DATA_DIR": str(tmp_path)}).persistent  # a Space's disk is wiped at restart
    assert not Settings.from_env({"DATA_DIR": "/data/studio"}).persistent  # /data is no longer persistent there
    assert Settings.from_env({"DATA_DIR": str(tmp_path), "PERSIST_DIR": str(tmp_path / "bucket")}).persistent


def test_finished_runs_and_evaluations_outlive_the_host(tmp_path):
    """Kept in PERSIST_DIR as write-once files (a run by the training CLI's --keep, which a run the app starts
    passes; an evaluation by the Evaluate tab), and back after a restart with an empty DATA_DIR, each whole."""
    from classifier.files import COMPLETE, keep_copy
    from training.runs import RunStore

    settings = Settings(data_dir=tmp_path / "data", persist_dir=tmp_path / "bucket",
                        data_roots=(tmp_path / "data" / "datasets",))
    (settings.data_dir / "datasets" / "pets" / "cat").mkdir(parents=True)
    _, argv = RunStore(settings).plan("datasets/pets", "efficientnet_lite0", 1, 0, 1)
    assert argv[argv.index("--keep") + 1] == str(tmp_path / "bucket" / "runs")
    run = settings.data_dir / "runs" / "20261206-pets"
    (run / "eval" / "val").mkdir(parents=True)
    (run / "status.json").write_text('{"state": "done"}')
    (run / "model.keras").write_bytes(b"weights")
    (run / "eval" / "val" / "report.json").write_text("{}")
    assert keep_copy(run, tmp_path / "bucket" / "runs" / run.name)  # what --keep does
    assert not keep_copy(run, tmp_path / "bucket" / "runs" / run.name)  # once: nothing rewritten
    evaluation = settings.data_dir / "evaluations" / "20261206-pets"
    evaluation.mkdir(parents=True)
    (evaluation / "report.json").write_text('{"accuracy": 1}')
    settings.layout.keep(evaluation, "evaluations")
    half = tmp_path / "bucket" / "runs" / "20261207-cut"  # a copy a kill interrupted: no .complete
    half.mkdir()
    (half / "status.json").write_text('{"state": "done"}')
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "bucket").rglob("*") if p.is_file()}
    assert (tmp_path / "bucket" / "evaluations" / evaluation.name / COMPLETE).exists()

    shutil.rmtree(settings.data_dir)  # the host restarts with an empty disk
    assert settings.layout.restore_kept() == {"runs": [run.name], "evaluations": [evaluation.name]}
    assert RunStore(settings).finished() == [run.name]
    assert (run / "model.keras").read_bytes() == b"weights" and (run / "eval" / "val" / "report.json").exists()
    assert not (run / COMPLETE).exists() and (evaluation / "report.json").read_text() == '{"accuracy": 1}'
    assert settings.layout.restore_kept() == {"runs": [], "evaluations": []}  # nothing twice
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "bucket").rglob("*") if p.is_file()} == kept
