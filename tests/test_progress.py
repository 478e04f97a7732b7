"""Progress bars: drawn on a terminal, silent when output is captured (cron, Airflow task logs)."""

from countyhealth.progress import steps


def test_a_bar_is_drawn_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats stderr as a terminal
    monkeypatch.delenv("NO_COLOR", raising=False)
    with steps(2, "night") as bar:
        bar.advance("his_a/patients")
        bar.advance("load")
    err = capsys.readouterr().err
    assert "night" in err


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    with steps(2, "night") as bar:
        bar.advance("his_a/patients")
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
