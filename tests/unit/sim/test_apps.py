"""Background apps and the kill lines of the virtual phone, checked against the sources'
formats through the parsers harness uses on real phones."""

from __future__ import annotations

from pathlib import Path

from harness.run.oom import parse_kernel, parse_lmkd
from harness.sim import apps


def test_lmkd_kills_the_highest_adj_first_then_the_heaviest() -> None:
    state = apps.initial()
    order = []
    while (victim := state.victim()) is not None:
        order.append(victim.oom_score_adj)
        state = state.kill(victim, 100.0)
    assert order == sorted(order, reverse=True) and len(order) == len(apps.DEFAULT_APPS)
    assert state.freed_kb == sum(a[3] for a in apps.DEFAULT_APPS)
    tie = apps.Apps((apps.App("a", 1, 10001, 900, 10, 0), apps.App("b", 2, 10002, 900, 20, 0)),
                    3)
    assert tie.victim() is not None and tie.victim().name == "b"  # type: ignore[union-attr]


def test_killed_apps_restart_after_the_phone_was_idle_a_while(tmp_path: Path) -> None:
    state = apps.initial()
    chrome = state.apps[0]
    state = apps.Apps(state.kill(chrome, 10.0).apps, state.next_pid, last_binary_wall=10.0)
    apps.save(tmp_path, state)
    loaded = apps.load(tmp_path)
    assert loaded == state
    same, started = apps.restart_due(loaded, 10.0 + apps.APP_RESTART_S * 0.5, 1.0)
    assert started == [] and same == loaded
    fresh, started = apps.restart_due(loaded, 10.0 + apps.APP_RESTART_S + 1, 1.0)
    assert [a.name for a in started] == [chrome.name] and started[0].pid != chrome.pid
    assert fresh.freed_kb == 0
    assert apps.load(tmp_path / "missing") == apps.initial()


def test_the_lines_parse_as_the_real_ones() -> None:
    app = apps.initial().apps[0]
    line = f"12-02 10:00:00.000   587   587 I lowmemorykiller: {apps.kill_line(app, 'x')}"
    kill = parse_lmkd(line)[0]
    assert (kill.name, kill.pid, kill.uid, kill.adj, kill.rss_kb, kill.swap_kb, kill.reason) == (
        app.name, app.pid, app.uid, app.oom_score_adj, app.rss_kb, app.swap_kb, "x")
    lines = apps.oom_kill_lines("sdxl_pipeline_run", 4242, 1_000_000, 2_350_000, 2000)
    kernel = parse_kernel("\n".join(f"[  100.000001] {ln}" for ln in lines))
    assert len(kernel) == 1
    assert (kernel[0].pid, kernel[0].comm, kernel[0].rss_kb, kernel[0].uid) == (
        4242, "sdxl_pipeline_r", 1_000_000, 2000)
    assert apps.kill_reason(apps.OOM_FLOOR_KB - 1) == "min watermark is breached"
    assert apps.kill_reason(apps.OOM_FLOOR_KB) == "low watermark is breached"
