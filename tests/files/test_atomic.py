"""Directories written atomically (a SavedModel): published by one rename, never replacing an
existing output without force, nothing left behind on failure."""

import pytest

from parity.files.atomic import OutputExistsError, OutputPathError, atomic_directory, check_destination


def write_model(tmp, text):
    tmp.mkdir()
    (tmp / "saved_model.pb").write_text(text)
    (tmp / "variables").mkdir()


def test_a_directory_takes_its_name_only_when_complete(tmp_path):
    dst = tmp_path / "model"
    with atomic_directory(dst) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.") and not tmp.exists()
        write_model(tmp, "new")
        assert not dst.exists()  # not before the block ends
    assert (dst / "saved_model.pb").read_text() == "new" and (dst / "variables").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_an_existing_output_is_kept_without_force_and_replaced_with_it(tmp_path):
    dst = tmp_path / "model"
    with atomic_directory(dst) as tmp:
        write_model(tmp, "old")
    with pytest.raises(OutputExistsError, match="--force"):
        with atomic_directory(dst):
            pytest.fail("the block must not run")
    with atomic_directory(dst, force=True) as tmp:
        write_model(tmp, "new")
    assert (dst / "saved_model.pb").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # the old one moved aside, then removed


def test_a_failure_leaves_the_old_output_and_nothing_else(tmp_path):
    dst = tmp_path / "model"
    with atomic_directory(dst) as tmp:
        write_model(tmp, "old")
    with pytest.raises(RuntimeError, match="exporter crashed"):
        with atomic_directory(dst, force=True) as tmp:
            write_model(tmp, "half")
            raise RuntimeError("exporter crashed")
    assert (dst / "saved_model.pb").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    with pytest.raises(OutputPathError, match="nothing was written"):
        with atomic_directory(tmp_path / "empty"):
            pass
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_destinations_are_checked_before_any_work(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(OutputPathError, match="is a directory; expected a file name"):
        check_destination(tmp_path / "folder")
    with pytest.raises(OutputExistsError):
        check_destination(tmp_path / "folder", directory=True)
    assert check_destination(tmp_path / "folder", force=True, directory=True) == tmp_path / "folder"
    with pytest.raises(OutputPathError, match="does not exist"):
        check_destination(tmp_path / "missing" / "model", directory=True)
