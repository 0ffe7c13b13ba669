import os

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
