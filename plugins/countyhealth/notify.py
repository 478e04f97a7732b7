"""Failure and held-batch alerts to a group-chat robot (企业微信 / 钉钉 群机器人) as an Airflow notifier.

Configuration (environment, so a county sets it once for every Airflow component):

- ``COUNTYHEALTH_ALERT_WEBHOOK``: the robot's webhook URL (企业微信
  ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...``, 钉钉
  ``https://oapi.dingtalk.com/robot/send?access_token=...``). Unset: no alerts, only the log and run report.
- ``COUNTYHEALTH_ALERT_KIND``: ``wecom`` (default) or ``dingtalk`` — the JSON shape each robot expects, a
  markdown message: 企业微信 ``{"msgtype": "markdown", "markdown": {"content": ...}}``, 钉钉
  ``{"msgtype": "markdown", "markdown": {"title": ..., "text": ...}}``.

Built on Airflow's own ``BaseNotifier`` (``airflow.sdk``) so it plugs into ``on_failure_callback`` like any
provider's notifier; the message is scrubbed of ID numbers and phones before it leaves.
"""

from __future__ import annotations

import os

from airflow.sdk import BaseNotifier

KINDS = ("wecom", "dingtalk")


def payload(kind: str, title: str, lines: list[str]) -> dict:
    """The robot's JSON body for a markdown message."""
    from countyhealth import privacy

    text = privacy.scrub(f"### {title}\n" + "\n".join(f"- {line}" for line in lines))
    if kind == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": text[:4000]}}  # 企业微信 caps markdown at 4096 bytes
    if kind == "dingtalk":
        return {"msgtype": "markdown", "markdown": {"title": title, "text": text[:4000]}}
    raise ValueError(f"COUNTYHEALTH_ALERT_KIND={kind!r}: use one of {', '.join(KINDS)}")


def send(title: str, lines: list[str], *, url: str | None = None, kind: str | None = None) -> bool:
    """Post one alert; False (logged, never raised) when no webhook is set or the robot refuses it."""
    import logging

    import requests

    url = url or os.environ.get("COUNTYHEALTH_ALERT_WEBHOOK")
    if not url:
        return False
    body = payload(kind or os.environ.get("COUNTYHEALTH_ALERT_KIND", "wecom"), title, lines)
    try:
        resp = requests.post(url, json=body, timeout=10)
        ok = resp.ok and resp.json().get("errcode", 0) == 0  # both robots answer {"errcode": 0, ...}
    except (requests.RequestException, ValueError) as exc:
        logging.getLogger(__name__).warning("alert webhook failed: %s", type(exc).__name__)
        return False
    if not ok:
        logging.getLogger(__name__).warning("alert webhook refused the message: HTTP %s", resp.status_code)
    return ok


class CountyAlertNotifier(BaseNotifier):
    """Posts a failed task (which member, which stage, why) or the night's held batches to the robot."""

    def __init__(self, *, url: str | None = None, kind: str | None = None):
        super().__init__()
        self.url, self.kind = url, kind

    def notify(self, context) -> None:
        ti = context.get("task_instance") or context.get("ti")
        dag_run = context.get("dag_run")
        exc = context.get("exception")
        task = getattr(ti, "task_id", "?")
        member = task.partition(".")[0].removeprefix("member_") if task.startswith("member_") else None
        title = f"countyhealth: {member or 'the pipeline'} failed at {task.rpartition('.')[2]}"
        lines = [f"run: {getattr(dag_run, 'run_id', '?')}", f"task: {task}"]
        if exc is not None:
            lines += [line for line in str(exc).splitlines() if line.strip()][:12]
        lines.append("see `countyhealth status` for what to do")
        send(title, lines, url=self.url, kind=self.kind)
