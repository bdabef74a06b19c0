"""The demo's stage bookkeeping: skip a finished stage, redo it (and what follows) when settings change."""

import sys

from bioalbert_tf import demo


def test_stages_skip_and_redo(tmp_path, capsys):
    log = tmp_path / "runs.txt"
    cmd = [sys.executable, "-c", f"open({str(log)!r}, 'a').write('x')"]

    def pipeline(first_setting):
        demo._UPSTREAM.clear()
        demo._stage("first", str(tmp_path / "a"), {"v": first_setting}, cmd)
        demo._stage("second", str(tmp_path / "b"), {"v": 1}, cmd)

    pipeline(1)
    assert log.read_text() == "xx"
    pipeline(1)  # same settings: both skipped
    assert log.read_text() == "xx" and "already done" in capsys.readouterr().out
    (tmp_path / "b" / "stale.txt").write_text("old output")
    pipeline(2)  # the first stage changed: it and the stage after it run again, afresh
    assert log.read_text() == "xxxx"
    assert not (tmp_path / "b" / "stale.txt").exists()
