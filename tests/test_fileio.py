"""tessera.fileio's directory helpers on local disk (tests/gcs covers the same calls on gs://)."""
import os

from tessera import fileio


def test_remove_tree_deletes_a_directory_and_everything_under_it(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("a")
    (tmp_path / "d" / "sub" / "b.txt").write_text("b")
    (tmp_path / "dd.txt").write_text("a sibling whose name starts alike")
    assert fileio.is_dir(str(tmp_path / "d"))
    assert fileio.list_tree(str(tmp_path / "d")) == [str(tmp_path / "d" / "a.txt"),
                                                     str(tmp_path / "d" / "sub" / "b.txt")]
    fileio.remove_tree(str(tmp_path / "d") + "/")
    assert os.listdir(tmp_path) == ["dd.txt"] and not fileio.is_dir(str(tmp_path / "d"))
    fileio.remove_tree(str(tmp_path / "missing"))  # nothing there: fine
    assert fileio.list_tree(str(tmp_path / "missing")) == []
